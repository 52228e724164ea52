package loadtest

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/wshub/wshub/hub/auth"
)

// validateTokens checks the token settings against each other and against
// the targets' requests (uris).
func (c *Config) validateTokens(uris []string) error {
	switch {
	case c.JWTSecret != "" && c.Token != "":
		return fmt.Errorf("--jwt-secret and --token are exclusive: connections present minted tokens or the given one")
	case c.JWTSecret == "" && c.JWTChannels != nil:
		return fmt.Errorf("--jwt-channels needs --jwt-secret")
	case c.JWTSecret == "" && c.Token == "":
		if c.TokenHeader {
			return fmt.Errorf("--jwt-header needs --jwt-secret or --token")
		}
		return nil
	case c.JWTTTL < 0:
		return fmt.Errorf("--jwt-ttl must not be negative")
	}
	for i := 0; i < len(c.Token); i++ {
		if b := c.Token[i]; b <= ' ' || b >= 0x7f {
			return fmt.Errorf("--token: byte %d (%q) cannot go into a request; a token is printable ASCII without spaces", i, b)
		}
	}
	if c.JWTSecret != "" {
		// With the longest sub there can be, so that whatever take mints
		// later mints too.
		if _, err := auth.Mint([]byte(c.JWTSecret), "HS256", "wsload-"+strconv.FormatInt(math.MaxInt64, 10), c.JWTChannels, c.JWTTTL, nil); err != nil {
			return fmt.Errorf("--jwt-secret: %v", err)
		}
	}
	if !c.TokenHeader {
		for _, uri := range uris {
			if _, q, _ := strings.Cut(uri, "?"); hasTokenParam(q) {
				// The gateway reads the first token= of the query.
				return fmt.Errorf("target %s already carries token=, which the gateway would read instead of wsload's; drop it or use --jwt-header", uri)
			}
		}
	}
	return nil
}

// hasTokenParam reports whether a raw query has a token parameter, as the
// gateway finds one.
func hasTokenParam(q string) bool {
	for q != "" {
		var kv string
		kv, q, _ = strings.Cut(q, "&")
		if strings.HasPrefix(kv, "token=") {
			return true
		}
	}
	return false
}
