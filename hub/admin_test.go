package hub

import (
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestAdminHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	b := newFakeBroker()
	h, loops := testHub(t, b, 2, Config{MaxPublish: 16, Metrics: reg})
	sub := &fakeConn{loop: 1}
	h.OnOpen(sub)
	h.OnText(sub, []byte(`{"op":"subscribe","channel":"room:1","id":1}`))
	runAll(loops)
	sub.take()

	var ready atomic.Bool
	ready.Store(true)
	srv := httptest.NewServer(AdminHandler(h, ready.Load, reg))
	defer srv.Close()

	do := apiClient(t, srv)

	code, body := do("POST", "/api/publish", `{"channel":"room:1","data":{"a": [1, "é"]}}`)
	if code != 200 || body != `{"ok":true}` {
		t.Fatalf("publish: %d %s", code, body)
	}
	runAll(loops)
	if got := sub.take(); len(got) != 1 || got[0] != `{"op":"message","channel":"room:1","data":{"a": [1, "é"]}}` {
		t.Fatalf("subscriber got %q", got)
	}

	for _, tc := range []struct {
		method, body string
		code         int
		says         string
	}{
		{"POST", `{"channel":"a"`, 400, "malformed JSON"},
		{"POST", `[1]`, 400, "body must be a JSON object"},
		{"POST", `{"channel":"a"}`, 400, "missing data"},
		{"POST", `{"data":1}`, 400, "missing channel"},
		{"POST", `{"channel":1,"data":1}`, 400, "channel must be a string"},
		{"POST", "{\"channel\":\"a\",\"data\":\"\xff\"}", 400, "UTF-8"},
		{"POST", `{"channel":"bad name","data":1}`, 422, "invalid character"},
		{"POST", `{"channel":"a","data":"` + strings.Repeat("x", 40) + `"}`, 413, "publish limit"},
		{"POST", `{"channel":"a","data":"` + strings.Repeat("x", 4000) + `"}`, 413, "publish limit"},
		{"GET", ``, 405, "POST"},
	} {
		code, body := do(tc.method, "/api/publish", tc.body)
		var e struct {
			Error struct {
				Code    int
				Message string
			}
		}
		if err := json.Unmarshal([]byte(body), &e); err != nil {
			t.Fatalf("%s: body is not JSON: %s", tc.body, body)
		}
		if code != tc.code || e.Error.Code != tc.code || !strings.Contains(e.Error.Message, tc.says) {
			t.Fatalf("%s %.40s: %d %s, want %d saying %q", tc.method, tc.body, code, body, tc.code, tc.says)
		}
	}

	b.mu.Lock()
	b.pubErr = ErrUnavailable
	b.mu.Unlock()
	if code, body := do("POST", "/api/publish", `{"channel":"a","data":1}`); code != 503 || !strings.Contains(body, `"code":503`) {
		t.Fatalf("broker down: %d %s", code, body)
	}

	if code, _ := do("GET", "/healthz", ""); code != 200 {
		t.Fatalf("/healthz %d", code)
	}
	if code, _ := do("GET", "/readyz", ""); code != 200 {
		t.Fatalf("/readyz %d while ready", code)
	}
	ready.Store(false)
	if code, _ := do("GET", "/readyz", ""); code != 503 {
		t.Fatalf("/readyz %d while not ready", code)
	}
	if code, _ := do("POST", "/healthz", ""); code != 405 {
		t.Fatalf("POST /healthz %d", code)
	}

	code, body = do("GET", "/metrics", "")
	for _, want := range []string{
		`wshub_hub_commands_total{op="subscribe"} 1`,
		`wshub_hub_api_publishes_total 2`,
		`wshub_hub_publications_total 1`,
		`wshub_hub_deliveries_total 1`,
		`wshub_hub_channels 1`,
		`wshub_hub_subscriptions 1`,
		`wshub_hub_broker_subscriptions 1`,
		`wshub_hub_fanout_latency_seconds_count 1`,
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Fatalf("/metrics lacks %q:\n%s", want, body)
		}
	}
}

func TestMetricsCountCommandsAndErrors(t *testing.T) {
	reg := prometheus.NewRegistry()
	h, loops := testHub(t, newFakeBroker(), 2, Config{Metrics: reg})
	c := &fakeConn{loop: 0}
	h.OnOpen(c)
	for _, m := range []string{`{"op":"ping"}`, `{"op":"ping"}`, `nope`, `{"op":"unsubscribe","channel":"x"}`, `{"op":"subscribe","channel":"a b"}`} {
		h.OnText(c, []byte(m))
	}
	runAll(loops)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			key := mf.GetName()
			for _, l := range m.Label {
				key += "/" + l.GetValue()
			}
			if m.Counter != nil {
				got[key] = m.Counter.GetValue()
			}
		}
	}
	for key, want := range map[string]float64{
		"wshub_hub_commands_total/ping":        2,
		"wshub_hub_commands_total/invalid":     1,
		"wshub_hub_commands_total/unsubscribe": 1,
		"wshub_hub_commands_total/subscribe":   1,
		"wshub_hub_errors_total/400":           1,
		"wshub_hub_errors_total/404":           1,
		"wshub_hub_errors_total/422":           1,
		"wshub_hub_errors_total/503":           0,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
}

// untouchedBody fails the test when read: a handler must answer without it.
type untouchedBody struct{ t *testing.T }

func (b untouchedBody) Read([]byte) (int, error) {
	b.t.Error("the body was read although Content-Length is over the limit")
	return 0, io.EOF
}

// A declared Content-Length over the limit gets 413 before the body is read,
// on both POST routes; one within it is still read (and answered on its
// content).
func TestAdminContentLengthOverLimit413BeforeReading(t *testing.T) {
	h, _ := testHub(t, newFakeBroker(), 1, Config{MaxPublish: 16, Directory: &fakeDirectory{}})
	mux := AdminHandler(h, nil, nil)
	limit := int64(16 + 1024) // MaxPublish plus room for the JSON around it
	for _, path := range []string{"/api/publish", "/api/send"} {
		for _, cl := range []int64{limit + 1, 1 << 40} {
			req := httptest.NewRequest("POST", path, untouchedBody{t})
			req.ContentLength = cl
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			if rec.Code != 413 || !strings.Contains(rec.Body.String(), "publish limit") {
				t.Errorf("%s Content-Length %d: %d %s, want 413", path, cl, rec.Code, rec.Body.String())
			}
		}
		body := `{"channel":"a","conn":"a.1","data":"` + strings.Repeat("x", 1000) + `"}`
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if req.ContentLength > limit || rec.Code != 413 {
			t.Errorf("%s: a body within the byte limit whose data is over it: %d %s, want 413", path, rec.Code, rec.Body.String())
		}
	}
}
