package hub

import (
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/wshub/wshub/hub/access"
	"github.com/wshub/wshub/hub/auth"
)

// Authentication (PROTOCOL.md, "Connecting"): a connection's token comes in
// the Authorization header (Bearer, any case) or in ?token=, the header
// winning when both are there; it is checked before the upgrade, and what it
// says (its sub, its channels claim) rides with the connection until it
// closes or refreshes it.

// TokenVerifier checks a token; *auth.Verifier implements it. Verify is
// called from every loop at once.
type TokenVerifier interface {
	Verify(token string) (auth.Claims, error)
}

// AuthConfig configures connection authentication. A zero AuthConfig is a
// gateway without authentication: every connection is anonymous.
type AuthConfig struct {
	// Verifier checks tokens; nil disables authentication.
	Verifier TokenVerifier
	// AllowAnonymous lets connections without a token in (with what the
	// namespaces grant anyone); otherwise they get 401.
	AllowAnonymous bool
	// Leeway is added to a token's exp before its connection is closed:
	// the verifier's clock-skew leeway.
	Leeway time.Duration
	// MaxConnsPerUser caps one user's connections on this instance (over
	// it: 429 before the upgrade); 0 = no cap.
	MaxConnsPerUser int
}

// Upgrade refusal reasons, for the metrics and the debug log. The verifier's
// reasons (auth.Reasons) are counted beside them.
const (
	refusedMissing = "missing"        // no token and anonymous connections are not allowed
	refusedUserCap = "max_conns_user" // the user has MaxConnsPerUser connections already
	refusedBusy    = "verifiers_busy" // too many slow tokens wait for a verifier worker (503)
)

// refusalReasons label refused upgrades in the metrics.
var refusalReasons = append(auth.Reasons(), refusedMissing, refusedUserCap, refusedBusy)

// OnUpgrade decides an upgrade request from its raw query and Authorization
// header (eventloop.Upgrader, through the caller's glue): 0 accepts it, 401
// refuses a missing or bad token, 429 a user over its connection cap,
// UpgradeLater defers a token whose signature is slow to check to the
// verifier workers, which answer with c.Resume. An accepted connection gets
// its identity and, when its token expires, its expiry. Runs on c's loop.
func (h *Hub) OnUpgrade(c Conn, query, authorization string) int {
	a := &h.cfg.Auth
	if a.Verifier == nil {
		return 0
	}
	token := tokenOf(query, authorization)
	if token == "" {
		if a.AllowAnonymous {
			return 0
		}
		h.refuseUpgrade(refusedMissing, nil)
		return 401
	}
	if slowAlg(token) {
		return h.verifyLater(c, token)
	}
	return h.admit(c, token)
}

// admit verifies token and, when it is good, gives c its identity and
// expiry; it returns the upgrade's answer. On c's loop, or on a verifier
// worker for a slow token (verifyLater: then it only verifies there).
func (h *Hub) admit(c Conn, token string) int {
	claims, err := h.cfg.Auth.Verifier.Verify(token)
	return h.admitClaims(c, &claims, err)
}

// admitClaims is admit once the token is verified. On c's loop.
func (h *Hub) admitClaims(c Conn, claims *auth.Claims, err error) int {
	a := &h.cfg.Auth
	if err != nil {
		h.refuseUpgrade(auth.ReasonOf(err), err)
		return 401
	}
	cs := h.state(c)
	cs.ident = access.Identity{User: claims.Sub, Grants: h.grants.get(claims.Channels, claims.HasChannels)}
	if a.MaxConnsPerUser > 0 {
		if !h.users.acquire(claims.Sub, a.MaxConnsPerUser) {
			c.SetData(nil)
			h.refuseUpgrade(refusedUserCap, nil)
			return 429
		}
		cs.flags |= csCounted
	}
	if !claims.Expires.IsZero() {
		c.SetExpiry(claims.Expires.Add(a.Leeway))
	}
	h.setInfo(cs, claims.Info)
	return 0
}

// refuseUpgrade counts a refused upgrade and logs why at debug level.
func (h *Hub) refuseUpgrade(reason string, err error) {
	h.stats.upgradeRefused(reason)
	if err != nil {
		h.log.Debug("upgrade refused", "reason", reason, "err", err)
	} else {
		h.log.Debug("upgrade refused", "reason", reason)
	}
}

// tokenOf finds the connection's token: the Authorization header's Bearer
// credentials, else the token query parameter (percent-decoded when it needs
// to be; JWTs never do). Another Authorization scheme is ignored: a proxy may
// add one.
func tokenOf(query, authorization string) string {
	if scheme, cred, ok := strings.Cut(strings.TrimSpace(authorization), " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(cred)
	}
	for query != "" {
		var kv string
		kv, query, _ = strings.Cut(query, "&")
		if v, ok := strings.CutPrefix(kv, "token="); ok {
			if strings.ContainsAny(v, "%+") {
				if dec, err := url.QueryUnescape(v); err == nil {
					return dec
				}
			}
			return v
		}
	}
	return ""
}

// userCounts counts each user's connections on this instance, for
// AuthConfig.MaxConnsPerUser. It holds one entry per connected user, so it
// is bounded by the connections.
type userCounts struct {
	mu sync.Mutex
	n  map[string]int32 // guarded by mu
}

// acquire counts one more connection of user unless it has max already.
func (u *userCounts) acquire(user string, max int) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.n == nil {
		u.n = make(map[string]int32)
	}
	if int(u.n[user]) >= max {
		return false
	}
	u.n[user]++
	return true
}

// release undoes acquire.
func (u *userCounts) release(user string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.n[user] <= 1 {
		delete(u.n, user)
		return
	}
	u.n[user]--
}
