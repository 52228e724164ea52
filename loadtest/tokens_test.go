package loadtest

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wshub/wshub/hub/auth"
)

const testSecret = "wsload-test-secret-of-32-bytes!!"

func testVerifier(t testing.TB, secret string) *auth.Verifier {
	t.Helper()
	v, err := auth.New(auth.Config{Secrets: [][]byte{[]byte(secret)}, RequireExp: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

// TestMintedSubsUniqueAcrossWorkers: each worker process mints its stock
// ahead and the rest as it goes, and over all of them every token is a
// valid HS256 token for its own sub, numbered as connections are.
func TestMintedSubsUniqueAcrossWorkers(t *testing.T) {
	v := testVerifier(t, testSecret)
	const workers, stock, taken = 3, 5, 7
	seen := map[string]bool{}
	for w := range workers {
		cfg := &Config{JWTSecret: testSecret, JWTChannels: []string{"*", "news"}, JWTTTL: time.Hour, Worker: w, Workers: workers}
		s := newTokenSource(cfg)
		if err := s.premint(stock); err != nil {
			t.Fatal(err)
		}
		for k := range taken {
			tok := string(s.take())
			c, err := v.Verify(tok)
			if err != nil {
				t.Fatalf("worker %d token %d: %v", w, k, err)
			}
			if want := "wsload-" + strconv.Itoa(k*workers+w); c.Sub != want {
				t.Errorf("worker %d token %d: sub %q, want %q", w, k, c.Sub, want)
			}
			if seen[c.Sub] {
				t.Errorf("sub %q presented twice", c.Sub)
			}
			seen[c.Sub] = true
			if !slices.Equal(c.Channels, cfg.JWTChannels) || time.Until(c.Expires) < 59*time.Minute {
				t.Errorf("%s: channels %v, expires in %v", c.Sub, c.Channels, time.Until(c.Expires))
			}
		}
		if st := s.stats(); st != (TokenStats{Preminted: stock, DuringRun: taken - stock}) {
			t.Errorf("worker %d: %+v", w, st)
		}
	}
	if len(seen) != workers*taken {
		t.Fatalf("%d subs for %d tokens", len(seen), workers*taken)
	}
}

// TestFixedTokenFitsWhereItGoes: a --token goes as given into the header
// and escaped into the query, so that the gateway's unescaping gives it
// back (a + would otherwise become a space).
func TestFixedTokenFitsWhereItGoes(t *testing.T) {
	const tok = "ab+c/d=="
	if got := string(newTokenSource(&Config{Token: tok, TokenHeader: true}).take()); got != tok {
		t.Errorf("header token %q", got)
	}
	q := newTokenSource(&Config{Token: tok})
	if got := string(q.take()); got != "ab%2Bc%2Fd%3D%3D" {
		t.Errorf("query token %q", got)
	}
	if q.stats() != (TokenStats{}) {
		t.Errorf("a fixed token counted as minted: %+v", q.stats())
	}
	if newTokenSource(&Config{}) != nil || newTokenSource(&Config{}).take() != nil {
		t.Error("no token configured, yet a source")
	}
}

// TestTokensForPlan: the stock is what the run will present, one token per
// upgrade, bounded.
func TestTokensForPlan(t *testing.T) {
	for _, c := range []struct {
		cfg     Config
		planned int64
		want    int64
	}{
		{Config{Scenario: ScenarioIdle}, 300, 300},
		{Config{Scenario: ScenarioFanout}, 42, 42},
		{Config{Scenario: ScenarioStorm}, 300, 600},                                                               // each reconnects once
		{Config{Scenario: ScenarioChurn, Rate: 200, Workers: 2, Pollers: 1, Duration: 10 * time.Second}, 0, 1001}, // 100/s for 10 s, +1
		{Config{Scenario: ScenarioChurn, Workers: 1, Pollers: 1, Duration: 2 * time.Second}, 0, 2*churnCeiling + 1},
		{Config{Scenario: ScenarioChurn, Workers: 1, Pollers: 4, Duration: time.Minute}, 0, maxStock},
		{Config{Scenario: ScenarioIdle}, maxStock + 5, maxStock},
	} {
		if got := c.cfg.tokensFor(c.planned); got != c.want {
			t.Errorf("%s rate %v pollers %d, %d planned: %d tokens, want %d", c.cfg.Scenario, c.cfg.Rate, c.cfg.Pollers, c.planned, got, c.want)
		}
	}
}

func TestValidateTokens(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		uris []string
		err  string // "" = valid
	}{
		{Config{}, nil, ""},
		{Config{JWTSecret: testSecret, JWTChannels: []string{"room:*", "news"}}, []string{"/ws?tenant=1"}, ""},
		{Config{Token: "abc.def.ghi", TokenHeader: true}, []string{"/ws?token=x"}, ""},
		{Config{JWTSecret: testSecret, Token: "x"}, nil, "exclusive"},
		{Config{JWTChannels: []string{"*"}}, nil, "--jwt-channels needs --jwt-secret"},
		{Config{TokenHeader: true}, nil, "--jwt-header needs"},
		{Config{JWTSecret: testSecret, JWTTTL: -time.Second}, nil, "negative"},
		{Config{JWTSecret: testSecret, JWTChannels: []string{"room*"}}, nil, `"room*" is not a channel name`},
		{Config{Token: "two words"}, nil, "printable ASCII without spaces"},
		{Config{JWTSecret: testSecret}, []string{"/ws", "/ws?a=1&token=old"}, "already carries token="},
		{Config{JWTSecret: testSecret}, []string{"/ws?mytoken=1&tokens=2"}, ""},
	} {
		err := c.cfg.validateTokens(c.uris)
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%+v %v: error %v, want %q", c.cfg, c.uris, err, c.err)
		}
	}
}

// BenchmarkMint is what one connection's token costs to mint (auth.Mint,
// HS256, with a channels claim): the figure that decides minting ahead.
func BenchmarkMint(b *testing.B) {
	s := newTokenSource(&Config{JWTSecret: testSecret, JWTChannels: []string{"room:*", "news"}, JWTTTL: time.Hour, Workers: 1})
	for k := int64(0); b.Loop(); k++ {
		if _, err := s.mint(k); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTakePreminted is what a connection pays on its poller for a
// token from the stock.
func BenchmarkTakePreminted(b *testing.B) {
	const stock = 1024
	s := newTokenSource(&Config{JWTSecret: testSecret, JWTTTL: time.Hour, Workers: 1})
	if err := s.premint(stock); err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		if i%stock == 0 {
			s.next.Store(0) // the stock again, not minting past it
		}
		if len(s.take()) == 0 {
			b.Fatal("no token")
		}
	}
	if s.stats().DuringRun != 0 {
		b.Fatal("minted past the stock")
	}
}
