package hub

import (
	"strings"
	"testing"

	"github.com/wshub/wshub/hub/history"
)

// Reads out at the same time share one frame per publication; the cache
// empties when the last ends, and another epoch starts it afresh.
func TestReplayCacheSharesFramesWhileReadsAreOut(t *testing.T) {
	var c replayCache
	c.join()
	c.join()
	e := history.Entry{Offset: 7, Data: []byte(`{"n":7}`)}
	a, b := c.frame("hist:a", "e1", e), c.frame("hist:a", "e1", e)
	if a != b {
		t.Fatal("two reads of one burst framed the publication twice")
	}
	if !strings.HasSuffix(string(a.Bytes()), `{"op":"message","channel":"hist:a","offset":7,"data":{"n":7}}`) {
		t.Fatalf("frame %q", a.Bytes())
	}
	if d := c.frame("hist:a", "e2", e); d == a || len(c.frames) != 1 {
		t.Fatal("a frame of another epoch was shared")
	}
	c.leave()
	if len(c.frames) != 1 {
		t.Fatal("the cache emptied while a read was out")
	}
	c.leave()
	if c.frames != nil {
		t.Fatalf("the cache kept %d frames after the last read", len(c.frames))
	}
	a.Release()
	b.Release()
}
