package hub

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"
)

// The directory routes of the admin API (README.md, "Addressed sends"):
//
//	POST /api/send {"conn": id, "data": ...} or {"user": id, "data": ...}
//	     -> 200 {"ok":true,"sent":n}
//	GET  /api/connections/{id} -> 200 ConnInfo
//	GET  /api/instances        -> 200 {"instances":[InstanceInfo...]}
//
// 404 when no live instance holds the connection or user, 501 without a
// Directory (no registry configured), 503 when the directory cannot answer.

var (
	errNoDirectory = &Error{501, "addressed sends and lookups need the connection registry (--redis or --redis-cluster, with --registry)"}
	errSendTarget  = &Error{400, `give exactly one of "conn" and "user", as a non-empty string`}
	errConnUnknown = &Error{404, "no live instance holds this connection"}
	errUserUnknown = &Error{404, "no live instance holds a connection of this user"}
)

func (h *Hub) addDirectoryRoutes(mux *http.ServeMux) {
	mux.HandleFunc("/api/send", h.serveSend)
	mux.HandleFunc("/api/connections/{id}", h.serveConnection)
	mux.HandleFunc("/api/instances", h.serveInstances)
}

// directoryCall bounds a directory call by the publish timeout and maps its
// error to the API's answer.
func (h *Hub) directoryCall(r *http.Request, notFound *Error, fn func(ctx context.Context) error) *Error {
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.PublishTimeout)
	defer cancel()
	err := fn(ctx)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound):
		return notFound
	default:
		return &Error{503, "connection directory unavailable, retry later: " + err.Error()}
	}
}

// serveSend handles POST /api/send.
func (h *Hub) serveSend(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readPostBody(w, r)
	if !ok {
		return
	}
	if h.cfg.Directory == nil {
		writeAPIError(w, errNoDirectory)
		return
	}
	conn, user, data, perr := parseSendBody(body)
	if perr == nil && len(data) > h.cfg.MaxPublish {
		perr = h.errTooBig
	}
	if perr != nil {
		writeAPIError(w, perr)
		return
	}
	sent := 0
	var e *Error
	if conn != "" {
		e = h.directoryCall(r, errConnUnknown, func(ctx context.Context) error {
			err := h.cfg.Directory.SendToConn(ctx, conn, data)
			if err == nil {
				sent = 1
			}
			return err
		})
	} else {
		e = h.directoryCall(r, errUserUnknown, func(ctx context.Context) error {
			n, err := h.cfg.Directory.SendToUser(ctx, user, data)
			if sent = n; n > 0 {
				return nil // some owners took it: report what was sent
			}
			return err
		})
	}
	if e != nil {
		writeAPIError(w, e)
		return
	}
	writeJSON(w, struct {
		OK   bool `json:"ok"`
		Sent int  `json:"sent"`
	}{true, sent})
}

// parseSendBody extracts the target and data of POST /api/send.
func parseSendBody(body []byte) (conn, user string, data []byte, err *Error) {
	if !utf8.Valid(body) {
		return "", "", nil, &Error{400, "body is not valid UTF-8"}
	}
	var fs fields
	if perr := scanFields(body, &fs); perr != nil {
		if perr == errNotObject {
			perr = &Error{400, "body must be a JSON object with conn or user, and data"}
		}
		return "", "", nil, perr
	}
	target := func(f *rawField) (string, bool) {
		if !f.present {
			return "", true
		}
		if f.kind != kindString {
			return "", false
		}
		s := string(f.str())
		return s, s != ""
	}
	conn, okc := target(&fs.conn)
	user, oku := target(&fs.user)
	if !okc || !oku || (conn == "") == (user == "") {
		return "", "", nil, errSendTarget
	}
	if !fs.data.present {
		return "", "", nil, errMissingData
	}
	return conn, user, fs.data.val, nil
}

// serveConnection handles GET /api/connections/{id}.
func (h *Hub) serveConnection(w http.ResponseWriter, r *http.Request) {
	if !getOnly(w, r) {
		return
	}
	if h.cfg.Directory == nil {
		writeAPIError(w, errNoDirectory)
		return
	}
	var info ConnInfo
	if e := h.directoryCall(r, errConnUnknown, func(ctx context.Context) (err error) {
		info, err = h.cfg.Directory.Lookup(ctx, r.PathValue("id"))
		return err
	}); e != nil {
		writeAPIError(w, e)
		return
	}
	writeJSON(w, info)
}

// serveInstances handles GET /api/instances.
func (h *Hub) serveInstances(w http.ResponseWriter, r *http.Request) {
	if !getOnly(w, r) {
		return
	}
	if h.cfg.Directory == nil {
		writeAPIError(w, errNoDirectory)
		return
	}
	var list []InstanceInfo
	if e := h.directoryCall(r, nil, func(ctx context.Context) (err error) {
		list, err = h.cfg.Directory.Instances(ctx)
		if errors.Is(err, ErrNotFound) {
			list, err = nil, nil
		}
		return err
	}); e != nil {
		writeAPIError(w, e)
		return
	}
	slices.SortFunc(list, func(a, b InstanceInfo) int { return strings.Compare(a.ID, b.ID) })
	if list == nil {
		list = []InstanceInfo{}
	}
	writeJSON(w, struct {
		Instances []InstanceInfo `json:"instances"`
	}{list})
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeAPIError(w, &Error{500, err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}
