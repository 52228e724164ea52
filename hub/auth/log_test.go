package auth

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// quietLogger sends a Verifier's log to the test log, shown only for a
// failed test (or with -v), so expected warnings do not clutter the output.
func quietLogger(t testing.TB) *slog.Logger {
	l, _ := captureLogger(t)
	return l
}

// captureLogger is quietLogger that also keeps the lines, for tests of what
// is logged.
func captureLogger(t testing.TB) (*slog.Logger, func() []string) {
	h := &testHandler{t: t, log: &logLines{}}
	return slog.New(h), func() []string {
		h.log.mu.Lock()
		defer h.log.mu.Unlock()
		return append([]string(nil), h.log.lines...)
	}
}

// logLines is what a testHandler and its derived handlers wrote.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

// testHandler is a slog.Handler writing to t.Log.
type testHandler struct {
	t     testing.TB
	attrs []slog.Attr
	log   *logLines
}

func (h *testHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *testHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	for _, a := range h.attrs {
		b.WriteString(" " + a.String())
	}
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	h.t.Log(b.String())
	h.log.mu.Lock()
	h.log.lines = append(h.log.lines, b.String())
	h.log.mu.Unlock()
	return nil
}

func (h *testHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

func (h *testHandler) WithGroup(string) slog.Handler { return h }
