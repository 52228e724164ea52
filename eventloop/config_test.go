package eventloop

import (
	"testing"

	"github.com/wshub/wshub/wsproto"
)

// The decoder keeps the message limit in 32 bits and counts fragments up to
// wsproto's ceilings: a Config past them is refused, not clamped in silence;
// at them it is taken as given (65,537 fragments, what Autobahn 9.3.1 and
// 9.4.1 need, was over the old 16-bit ceiling).
func TestConfigDecoderCeilings(t *testing.T) {
	c, err := Config{Addr: ":0"}.withDefaults()
	if err != nil || c.MaxFragments != 1024 {
		t.Fatalf("default MaxFragments %d, %v; want 1024", c.MaxFragments, err)
	}
	for _, n := range []int{1<<16 + 1, wsproto.MaxFragmentsCeiling} {
		if c, err := (Config{Addr: ":0", MaxFragments: n}).withDefaults(); err != nil || c.MaxFragments != n {
			t.Errorf("MaxFragments %d: got %d, %v", n, c.MaxFragments, err)
		}
	}
	if _, err := (Config{Addr: ":0", MaxFragments: wsproto.MaxFragmentsCeiling + 1}).withDefaults(); err == nil {
		t.Errorf("MaxFragments %d accepted", wsproto.MaxFragmentsCeiling+1)
	}
	over := int64(wsproto.MaxMessageCeiling) + 1 // negative on 32-bit: refused as well
	if _, err := (Config{Addr: ":0", MaxMessage: int(over)}).withDefaults(); err == nil {
		t.Errorf("MaxMessage %d accepted", over)
	}
}
