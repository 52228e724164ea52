package hub

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AdminHandler serves the admin API: POST /api/publish, GET /healthz,
// GET /readyz (200 while ready() is true, else 503), GET /metrics from g,
// the directory routes POST /api/send, GET /api/connections/{id} and
// GET /api/instances (501 without Config.Directory), GET
// /api/history/{channel}, and the presence routes GET
// /api/presence/{channel} and GET /api/presence/{channel}/stats.
func AdminHandler(h *Hub, ready func() bool, g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/publish", h.servePublish)
	h.addDirectoryRoutes(mux)
	h.addHistoryRoutes(mux)
	h.addPresenceRoutes(mux)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if !getOnly(w, r) {
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if !getOnly(w, r) {
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if ready != nil && !ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "not ready\n")
			return
		}
		io.WriteString(w, "ready\n")
	})
	if g != nil {
		mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	}
	return mux
}

func getOnly(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

// readPostBody reads the body of a POST whose JSON carries at most one
// publish-sized data value. It answers 405 or 413 itself and reports false.
func (h *Hub) readPostBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeAPIError(w, &Error{405, "use POST"})
		return nil, false
	}
	// The body may hold the data plus the addressing and JSON punctuation.
	limit := int64(h.cfg.MaxPublish) + 1024
	if r.ContentLength > limit {
		// Declared too big: answered before a byte of the body is read, so
		// the client need not send (and we need not wait for) all of it.
		writeAPIError(w, h.errTooBig)
		return nil, false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		writeAPIError(w, &Error{400, "reading the body: " + err.Error()})
		return nil, false
	}
	if int64(len(body)) > limit {
		writeAPIError(w, h.errTooBig)
		return nil, false
	}
	return body, true
}

// servePublish handles POST /api/publish {"channel": "...", "data": ...}.
func (h *Hub) servePublish(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readPostBody(w, r)
	if !ok {
		return
	}
	channel, data, perr := parsePublishBody(body)
	if perr != nil {
		writeAPIError(w, perr)
		return
	}
	at, err := h.Publish(r.Context(), string(channel), data)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{500, err.Error()}
		}
		writeAPIError(w, e)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if at.Offset != 0 {
		w.Write(strconv.AppendUint([]byte(`{"ok":true,"offset":`), at.Offset, 10))
		io.WriteString(w, "}")
		return
	}
	io.WriteString(w, `{"ok":true}`)
}

var errBodyNotObject = &Error{400, "body must be a JSON object with channel and data"}

// parsePublishBody extracts channel and data from the API body with the same
// scanner as client commands (data is kept byte for byte).
func parsePublishBody(body []byte) (channel, data []byte, err *Error) {
	if !utf8.Valid(body) {
		return nil, nil, &Error{400, "body is not valid UTF-8"}
	}
	var fs fields
	if perr := scanFields(body, &fs); perr != nil {
		if perr == errNotObject {
			perr = errBodyNotObject
		}
		return nil, nil, perr
	}
	switch {
	case !fs.channel.present:
		return nil, nil, errMissingChan
	case fs.channel.kind != kindString:
		return nil, nil, errChanType
	case !fs.data.present:
		return nil, nil, errMissingData
	}
	return fs.channel.str(), fs.data.val, nil
}

func writeAPIError(w http.ResponseWriter, e *Error) {
	b := append([]byte(`{"error":{"code":`), strconv.Itoa(e.Code)...)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, e.Message)
	b = append(b, "}}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Code)
	w.Write(b)
}
