package testserver

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
)

// Instance is one listener in front of a hub's handler, counting the
// connections it accepted. Several Instances in front of one hub behave
// like gateway instances joined by a broker; Instances on separate hubs
// like instances that are not.
type Instance struct {
	Addr  string // host:port
	conns atomic.Int64
	srv   *httptest.Server
}

// StartInstance serves h on a free loopback port.
func StartInstance(h http.Handler) *Instance {
	in := &Instance{}
	in.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in.conns.Add(1)
		h.ServeHTTP(w, r)
	}))
	in.Addr = strings.TrimPrefix(in.srv.URL, "http://")
	return in
}

// Conns is how many connections (upgrade requests) the instance received.
func (in *Instance) Conns() int64 { return in.conns.Load() }

// Stop cuts every connection and closes the listener.
func (in *Instance) Stop() {
	in.srv.CloseClientConnections()
	in.srv.Close()
}
