package hub

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/wshub/wshub/hub/history"
)

// GET /api/history/{channel}?since=&limit= reads a history channel's stream
// for a backend: its position and the publications after since (default 0),
// oldest first, at most limit (default and ceiling: the namespace's
// recovery_max, so an answer is as bounded as a replay).

var (
	errNoHistory = &Error{404, "this channel keeps no history (its namespace has no history_size)"}
	errSinceArg  = &Error{400, "since must be an offset: an integer from 0 to 2^53-1"}
	errLimitArg  = &Error{400, "limit must be a positive integer"}
)

func (h *Hub) addHistoryRoutes(mux *http.ServeMux) {
	mux.HandleFunc("/api/history/{channel}", h.serveHistory)
}

// historyAnswer is the body of a history read.
type historyAnswer struct {
	Offset       uint64           `json:"offset"`
	Epoch        string           `json:"epoch"`
	Publications []historyMessage `json:"publications"`
}

type historyMessage struct {
	Offset uint64          `json:"offset"`
	Data   json.RawMessage `json:"data"`
}

func (h *Hub) serveHistory(w http.ResponseWriter, r *http.Request) {
	if !getOnly(w, r) {
		return
	}
	channel := r.PathValue("channel")
	if err := validChannel(channel); err != nil {
		writeAPIError(w, err)
		return
	}
	ns := h.policy.Lookup(channel)
	if h.historian == nil || ns == nil || !ns.History.On() {
		writeAPIError(w, errNoHistory)
		return
	}
	q := r.URL.Query()
	since, limit := uint64(0), ns.Recovery()
	if s := q.Get("since"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil || v > history.MaxOffset {
			writeAPIError(w, errSinceArg)
			return
		}
		since = v
	}
	if s := q.Get("limit"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			writeAPIError(w, errLimitArg)
			return
		}
		limit = min(v, limit)
	}
	type result struct {
		a   historyAnswer
		err error
	}
	done := make(chan result, 1)
	h.historian.ReadHistory(channel, since, limit, func(rd history.Read, err error) {
		a := historyAnswer{Offset: rd.Pos.Offset, Epoch: rd.Pos.Epoch, Publications: make([]historyMessage, len(rd.Entries))}
		for i, e := range rd.Entries { // valid only during this call: copied
			a.Publications[i] = historyMessage{e.Offset, append(json.RawMessage(nil), e.Data...)}
		}
		done <- result{a, err}
	})
	select {
	case res := <-done:
		if res.err != nil {
			writeAPIError(w, errUnavailable)
			return
		}
		writeJSON(w, res.a)
	case <-time.After(h.cfg.PublishTimeout):
		writeAPIError(w, errTimeout)
	case <-r.Context().Done():
	}
}
