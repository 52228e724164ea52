package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/wshub/wshub/hub/access"
)

// Claims is what a verified token says about its holder.
type Claims struct {
	// Sub is the user id: the token's sub, never empty.
	Sub string
	// Expires is the token's exp, zero when it has none. Like every
	// NumericDate it is read to the second (golang-jwt's precision), a
	// fraction being dropped.
	Expires time.Time
	// Channels is the "channels" claim: names and patterns (see access.Match), nil
	// when absent.
	Channels []string
	// HasChannels is true when the claim was present; an empty list then
	// allows no channel at all.
	HasChannels bool
	// Info is the "info" claim, a JSON object, nil when absent.
	Info json.RawMessage
}

// errClaimShape marks a claim of the wrong JSON type ("claims").
var errClaimShape = errors.New("claim of the wrong type")

// tokenClaims is the claims set as golang-jwt decodes it. Every member stays
// raw JSON so that a claim of the wrong type is a "claims" (or "sub", "iss",
// "aud") refusal after the signature check, not a decoding failure before it.
type tokenClaims struct {
	Exp      json.RawMessage `json:"exp"`
	Nbf      json.RawMessage `json:"nbf"`
	Iat      json.RawMessage `json:"iat"`
	Iss      json.RawMessage `json:"iss"`
	Aud      json.RawMessage `json:"aud"`
	Sub      json.RawMessage `json:"sub"`
	Channels json.RawMessage `json:"channels"`
	Info     json.RawMessage `json:"info"`

	exp *jwt.NumericDate // Exp decoded, kept for Claims.Expires
}

// GetExpirationTime implements jwt.Claims.
func (c *tokenClaims) GetExpirationTime() (*jwt.NumericDate, error) {
	if c.exp == nil && c.Exp != nil {
		d, err := numericDate(c.Exp, "exp")
		if err != nil {
			return nil, err
		}
		c.exp = d
	}
	return c.exp, nil
}

// GetNotBefore implements jwt.Claims.
func (c *tokenClaims) GetNotBefore() (*jwt.NumericDate, error) {
	return numericDate(c.Nbf, "nbf")
}

// GetIssuedAt implements jwt.Claims.
func (c *tokenClaims) GetIssuedAt() (*jwt.NumericDate, error) {
	return numericDate(c.Iat, "iat")
}

// GetIssuer implements jwt.Claims.
func (c *tokenClaims) GetIssuer() (string, error) { return claimString(c.Iss, "iss") }

// GetSubject implements jwt.Claims.
func (c *tokenClaims) GetSubject() (string, error) { return claimString(c.Sub, "sub") }

// GetAudience implements jwt.Claims: a string or an array of strings.
func (c *tokenClaims) GetAudience() (jwt.ClaimStrings, error) {
	if c.Aud == nil {
		return nil, nil
	}
	var aud jwt.ClaimStrings
	if err := aud.UnmarshalJSON(c.Aud); err != nil {
		return nil, fmt.Errorf("%w: aud is not a string or an array of strings", errClaimShape)
	}
	return aud, nil
}

// numericDate decodes a NumericDate, integral or fractional; absent is nil.
// golang-jwt's decoder would also take a numeric string ("123"), which RFC
// 7519 does not allow, hence the first-byte check.
func numericDate(raw json.RawMessage, name string) (*jwt.NumericDate, error) {
	if raw == nil {
		return nil, nil
	}
	if b := raw[0]; b != '-' && (b < '0' || b > '9') {
		return nil, fmt.Errorf("%w: %s is not a number", errClaimShape, name)
	}
	var d jwt.NumericDate
	if err := d.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errClaimShape, name, err)
	}
	return &d, nil
}

// claimString decodes a string claim; absent is "".
func claimString(raw json.RawMessage, name string) (string, error) {
	if raw == nil {
		return "", nil
	}
	if raw[0] != '"' {
		return "", fmt.Errorf("%w: %s is not a string", errClaimShape, name)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%w: %s: %v", errClaimShape, name, err)
	}
	return s, nil
}

// channels decodes the "channels" claim: absent, or an array of valid
// patterns (null, a string or an object are refused, not taken as absent).
func (c *tokenClaims) channels() ([]string, bool, error) {
	if c.Channels == nil {
		return nil, false, nil
	}
	if c.Channels[0] != '[' {
		return nil, false, fmt.Errorf("%w: channels is not an array", errClaimShape)
	}
	var chans []string
	if err := json.Unmarshal(c.Channels, &chans); err != nil {
		return nil, false, fmt.Errorf("%w: channels is not an array of strings", errClaimShape)
	}
	for i, p := range chans {
		if !access.ValidPattern(p) {
			return nil, false, fmt.Errorf("%w: channels[%d] is not a channel name, prefix:* or *", errClaimShape, i)
		}
	}
	return chans, true, nil
}

// info returns the "info" claim, which must be a JSON object when present.
func (c *tokenClaims) info() (json.RawMessage, error) {
	if c.Info != nil && c.Info[0] != '{' {
		return nil, fmt.Errorf("%w: info is not an object", errClaimShape)
	}
	return c.Info, nil
}

// claims applies the checks golang-jwt does not: iss and aud (here so that a
// missing one is an "issuer" or "audience" refusal, not a generic missing
// claim), sub, channels and info.
func (v *Verifier) claims(tc *tokenClaims) (Claims, error) {
	if v.issuer != "" {
		if iss, err := tc.GetIssuer(); err != nil || iss != v.issuer {
			return Claims{}, refuse(ReasonIssuer, errors.New("iss is not the configured issuer"))
		}
	}
	if v.audience != "" {
		if aud, err := tc.GetAudience(); err != nil || !slices.Contains(aud, v.audience) {
			return Claims{}, refuse(ReasonAudience, errors.New("aud does not name the configured audience"))
		}
	}
	sub, err := tc.GetSubject()
	if err != nil || sub == "" {
		return Claims{}, refuse(ReasonSub, errors.New("sub is missing, empty or not a string"))
	}
	c := Claims{Sub: sub}
	if exp, _ := tc.GetExpirationTime(); exp != nil { // decoded already, for golang-jwt's check
		c.Expires = exp.Time
	}
	if c.Channels, c.HasChannels, err = tc.channels(); err != nil {
		return Claims{}, refuse(ReasonClaims, err)
	}
	if c.Info, err = tc.info(); err != nil {
		return Claims{}, refuse(ReasonClaims, err)
	}
	return c, nil
}
