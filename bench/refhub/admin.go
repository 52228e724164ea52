package refhub

import (
	"encoding/json"
	"io"
	"net/http"
)

// AdminHandler serves POST /api/publish and GET /healthz.
func (h *Hub) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("/api/publish", h.servePublish)
	return mux
}

func (h *Hub) servePublish(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		httpError(w, http.StatusMethodNotAllowed, "POST only")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxPublishData+1024))
	if err != nil {
		httpError(w, http.StatusBadRequest, "unreadable body")
		return
	}
	var in struct {
		Channel *string          `json:"channel"`
		Data    *json.RawMessage `json:"data"`
	}
	switch {
	case json.Unmarshal(body, &in) != nil || in.Channel == nil || in.Data == nil:
		httpError(w, http.StatusBadRequest, "want {\"channel\":...,\"data\":...}")
		return
	case !validChannel(*in.Channel):
		httpError(w, http.StatusUnprocessableEntity, "invalid channel name")
		return
	case len(*in.Data) > maxPublishData:
		httpError(w, http.StatusRequestEntityTooLarge, "data too large")
		return
	}
	select {
	case h.cmds <- command{kind: "publish", channel: *in.Channel, id: -1, frame: messageFrame(*in.Channel, *in.Data)}:
	case <-h.quit:
		httpError(w, http.StatusServiceUnavailable, "stopping")
		return
	case <-r.Context().Done():
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"ok":true}`))
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	m, _ := json.Marshal(msg)
	_, _ = w.Write([]byte(`{"ok":false,"error":` + string(m) + `}`))
}
