package hub

import (
	"context"
	"net/http"

	"github.com/wshub/wshub/hub/presence"
)

// The presence routes of the admin API (README.md, "Presence"):
//
//	GET /api/presence/{channel}       -> 200 {"members":[{"conn","user","info"}...]}
//	GET /api/presence/{channel}/stats -> 200 {"conns":n,"users":u}
//
// A '/' or '#' in the channel is percent-encoded (%2F, %23): the route
// takes one path segment. 404 for a channel without presence, 503 when the
// store cannot answer within the publish timeout. The list holds at most
// maxAdminMembers members, then says "truncated":true.

const maxAdminMembers = 100_000

func (h *Hub) addPresenceRoutes(mux *http.ServeMux) {
	mux.HandleFunc("/api/presence/{channel}", h.servePresence)
	mux.HandleFunc("/api/presence/{channel}/stats", h.servePresenceStats)
}

// presenceChannel checks the method and the channel of a presence route;
// it answers the error itself and reports false.
func (h *Hub) presenceChannel(w http.ResponseWriter, r *http.Request) (string, bool) {
	if !getOnly(w, r) {
		return "", false
	}
	ch := r.PathValue("channel")
	err := validChannel(ch)
	if err == nil {
		if ns := h.policy.Lookup(ch); ns == nil || !ns.Presence.On {
			err = errNoPresence
		} else if h.presence == nil {
			err = errPresenceDown
		}
	}
	if err != nil {
		writeAPIError(w, err)
		return "", false
	}
	return ch, true
}

// awaitStore waits for a store answer (ask calls its done exactly once)
// within the publish timeout.
func awaitStore[T any](h *Hub, r *http.Request, ask func(done func(T, error))) (T, *Error) {
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.PublishTimeout)
	defer cancel()
	type answer struct {
		v   T
		err error
	}
	got := make(chan answer, 1)
	ask(func(v T, err error) { got <- answer{v, err} })
	select {
	case a := <-got:
		if a.err != nil {
			return a.v, errPresenceDown
		}
		return a.v, nil
	case <-ctx.Done():
		var zero T
		return zero, errPresenceDown
	}
}

// servePresence handles GET /api/presence/{channel}.
func (h *Hub) servePresence(w http.ResponseWriter, r *http.Request) {
	ch, ok := h.presenceChannel(w, r)
	if !ok {
		return
	}
	ms, e := awaitStore(h, r, func(done func([]presence.Member, error)) { h.presence.Members(ch, done) })
	if e != nil {
		writeAPIError(w, e)
		return
	}
	b, cut := appendMembers([]byte(`{"members":`), ms, maxAdminMembers, 0)
	if cut {
		b = append(b, `,"truncated":true`...)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, "}\n"...))
}

// servePresenceStats handles GET /api/presence/{channel}/stats.
func (h *Hub) servePresenceStats(w http.ResponseWriter, r *http.Request) {
	ch, ok := h.presenceChannel(w, r)
	if !ok {
		return
	}
	st, e := awaitStore(h, r, func(done func(presence.Stats, error)) { h.presence.Stats(ch, done) })
	if e != nil {
		writeAPIError(w, e)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(appendStats([]byte{'{'}, st), "}\n"...))
}
