package hub

import (
	"bytes"
	"encoding/base64"
	"runtime"
	"strings"
	"sync"
)

// Slow signatures (RSA, ECDSA, EdDSA: 40-90 µs each, against 6 µs for HMAC)
// are checked off the event loops, so that a reconnect storm of
// asymmetric-key clients does not hold a loop, and every connection on it,
// for the whole storm: the loop defers the upgrade (UpgradeLater), a
// verifier worker checks the token, and the answer is posted back to the
// loop, which resumes the upgrade. HMAC tokens are checked on the loop:
// handing them over would cost more than checking them.

// UpgradeLater is OnUpgrade's answer for an upgrade decided later, by
// Conn.Resume (eventloop.UpgradeLater, through the caller's glue).
const UpgradeLater = -1

// maxPendingVerifications bounds the tokens waiting for a worker; past it an
// upgrade is answered 503 at once (the client retries later), so a flood of
// slow tokens costs a bounded queue.
const maxPendingVerifications = 16 << 10

// verifyJob is one deferred upgrade.
type verifyJob struct {
	c     Conn
	token string
}

// verifiers are the worker goroutines, one per CPU, started with the first
// slow token; they live as long as the process.
type verifiers struct {
	once sync.Once
	jobs chan verifyJob
}

func (h *Hub) verifyLater(c Conn, token string) int {
	v := &h.verifiers
	v.once.Do(func() {
		v.jobs = make(chan verifyJob, maxPendingVerifications)
		for range runtime.GOMAXPROCS(0) {
			go h.verifyWorker(v.jobs)
		}
	})
	select {
	case v.jobs <- verifyJob{c, strings.Clone(token)}: // token views the loop's buffer
		return UpgradeLater
	default:
		h.refuseUpgrade(refusedBusy, nil)
		return 503
	}
}

func (h *Hub) verifyWorker(jobs <-chan verifyJob) {
	for j := range jobs {
		claims, err := h.cfg.Auth.Verifier.Verify(j.token)
		c := j.c
		h.loops[c.Loop()].poster.Post(func() {
			c.Resume(func() int { return h.admitClaims(c, &claims, err) })
		})
	}
}

// slowAlg reports whether token's header names an algorithm other than
// HMAC. It decodes the header only (at most 256 bytes, on the stack);
// anything it cannot read is left to the loop, where it fails fast.
func slowAlg(token string) bool {
	head, _, ok := strings.Cut(token, ".")
	if !ok || len(head) > 344 { // 344 base64 characters: 258 bytes
		return false
	}
	var src [344]byte
	var buf [258]byte
	n, err := base64.RawURLEncoding.Decode(buf[:], src[:copy(src[:], head)])
	if err != nil {
		return false
	}
	h := buf[:n]
	i := bytes.Index(h, []byte(`"alg"`))
	if i < 0 {
		return false
	}
	h = bytes.TrimLeft(h[i+5:], " \t\r\n")
	if len(h) == 0 || h[0] != ':' {
		return false
	}
	h = bytes.TrimLeft(h[1:], " \t\r\n")
	return len(h) > 3 && h[0] == '"' && !bytes.HasPrefix(h[1:], []byte("HS")) && !bytes.HasPrefix(h[1:], []byte("none"))
}
