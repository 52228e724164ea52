package auth

import (
	"crypto"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	testIssuer   = "https://id.example.test"
	testAudience = "wshub"
)

// good is a payload the table's Verifier accepts; each case changes one thing.
func good() claims {
	return claims{"sub": "u1", "iss": testIssuer, "aud": testAudience, "exp": in(time.Hour), "iat": in(0)}
}

// with returns good() with k set to v (nil deletes k).
func with(kv ...any) claims {
	c := good()
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
		} else {
			c[kv[i].(string)] = kv[i+1]
		}
	}
	return c
}

// payload returns good() with extra raw JSON members appended, for shapes a
// Go map cannot express; a member good() has already is overridden (the last
// duplicate wins).
func payload(t testing.TB, extra string) string {
	b, err := json.Marshal(good())
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(string(b), "}") + "," + extra + "}"
}

func TestVerifyRefuses(t *testing.T) {
	v := newVerifier(t, Config{Secrets: [][]byte{secretA}, Issuer: testIssuer, Audience: testAudience})
	rsaPEM := pemOf(t, &testKeys().rsa.PublicKey)
	valid := signHS(t, good())
	cases := []struct {
		name, reason, token string
	}{
		{"empty", ReasonMalformed, ""},
		{"too long", ReasonMalformed, valid[:strings.LastIndexByte(valid, '.')] + "." + strings.Repeat("A", MaxTokenLen)},
		{"one dot", ReasonMalformed, "abc.def"},
		{"three dots", ReasonMalformed, valid + ".x"},
		{"empty header", ReasonMalformed, "." + valid[strings.IndexByte(valid, '.')+1:]},
		{"space", ReasonMalformed, " " + valid},
		{"padding", ReasonMalformed, valid + "="},
		{"header not JSON", ReasonMalformed, b64("nope") + "." + b64(`{"sub":"u1"}`) + ".c2ln"},
		{"payload not JSON", ReasonMalformed, rawHS256(t, hsHeader, "nope", secretA)},
		{"payload not an object", ReasonMalformed, rawHS256(t, hsHeader, `["sub"]`, secretA)},
		{"signature not base64", ReasonMalformed, valid[:strings.LastIndexByte(valid, '.')] + ".A"},
		{"kid not a string", ReasonMalformed, sign(t, "HS256", secretA, map[string]any{"kid": 7}, good())},
		{"crit header", ReasonMalformed, sign(t, "HS256", secretA, map[string]any{"crit": []string{"b64"}, "b64": false}, good())},
		{"forged signature", ReasonSignature, sign(t, "HS256", []byte("another secret, 32 bytes long..."), nil, good())},
		{"signature of another token", ReasonSignature, valid[:strings.LastIndexByte(valid, '.')] + signHS(t, with("sub", "u2"))[strings.LastIndexByte(valid, '.'):]},
		{"alg none", ReasonAlgorithm, b64(`{"alg":"none","typ":"JWT"}`) + "." + b64(payload(t, `"x":1`)) + "."},
		{"alg None", ReasonAlgorithm, b64(`{"alg":"None"}`) + "." + b64(payload(t, `"x":1`)) + "."},
		{"alg missing", ReasonAlgorithm, rawHS256(t, `{"typ":"JWT"}`, payload(t, `"x":1`), secretA)},
		{"alg unknown", ReasonAlgorithm, rawHS256(t, `{"alg":"HS999"}`, payload(t, `"x":1`), secretA)},
		{"alg RS256 without RSA keys", ReasonAlgorithm, sign(t, "RS256", testKeys().rsa, nil, good())},
		{"alg confusion: HS256 keyed with the RSA PEM", ReasonSignature, sign(t, "HS256", rsaPEM, nil, good())},
		{"expired", ReasonExpired, signHS(t, with("exp", in(-time.Minute)))},
		{"not yet valid", ReasonNotYetValid, signHS(t, with("nbf", in(time.Minute)))},
		{"issued in the future", ReasonIssuedInFuture, signHS(t, with("iat", in(time.Minute)))},
		{"wrong issuer", ReasonIssuer, signHS(t, with("iss", "https://evil.test"))},
		{"missing issuer", ReasonIssuer, signHS(t, with("iss", nil))},
		{"issuer not a string", ReasonIssuer, signHS(t, with("iss", []string{testIssuer}))},
		{"wrong audience", ReasonAudience, signHS(t, with("aud", "other"))},
		{"wrong audiences", ReasonAudience, signHS(t, with("aud", []string{"a", "b"}))},
		{"missing audience", ReasonAudience, signHS(t, with("aud", nil))},
		{"audience not strings", ReasonAudience, signHS(t, with("aud", []any{testAudience, 1}))},
		{"missing sub", ReasonSub, signHS(t, with("sub", nil))},
		{"empty sub", ReasonSub, signHS(t, with("sub", ""))},
		{"sub a number", ReasonSub, signHS(t, with("sub", 42))},
		{"sub null", ReasonSub, rawHS256(t, hsHeader, payload(t, `"sub":null`), secretA)},
		{"exp a string", ReasonClaims, signHS(t, with("exp", fmt.Sprint(in(time.Hour))))},
		{"exp null", ReasonClaims, rawHS256(t, hsHeader, payload(t, `"exp":null`), secretA)},
		{"nbf a bool", ReasonClaims, signHS(t, with("nbf", true))},
		{"channels a string", ReasonClaims, signHS(t, with("channels", "room:1"))},
		{"channels numbers", ReasonClaims, signHS(t, with("channels", []int{1, 2}))},
		{"channels mixed", ReasonClaims, signHS(t, with("channels", []any{"room:1", 2}))},
		{"channels an object", ReasonClaims, signHS(t, with("channels", map[string]any{"room:1": true}))},
		{"channels null", ReasonClaims, rawHS256(t, hsHeader, payload(t, `"channels":null`), secretA)},
		{"channels nested", ReasonClaims, signHS(t, with("channels", [][]string{{"room:1"}}))},
		{"channel pattern room*", ReasonClaims, signHS(t, with("channels", []string{"room*"}))},
		{"channel empty", ReasonClaims, signHS(t, with("channels", []string{""}))},
		{"channel with a space", ReasonClaims, signHS(t, with("channels", []string{"room 1"}))},
		{"info a string", ReasonClaims, signHS(t, with("info", "admin"))},
		{"info an array", ReasonClaims, signHS(t, with("info", []int{1}))},
		{"info a number", ReasonClaims, signHS(t, with("info", 1))},
		{"info null", ReasonClaims, rawHS256(t, hsHeader, payload(t, `"info":null`), secretA)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := v.Verify(c.token)
			wantReason(t, err, c.reason)
		})
	}
	mustVerify(t, v, valid)
}

func TestVerifyAccepts(t *testing.T) {
	v := newVerifier(t, Config{Secrets: [][]byte{secretA}})
	exp := in(time.Hour)
	c := mustVerify(t, v, signHS(t, claims{"sub": "u1", "exp": exp, "channels": []string{"room:*", "news", "*"}, "info": map[string]any{"name": "Ann"}}))
	if c.Sub != "u1" || !c.Expires.Equal(time.Unix(exp, 0)) || !c.HasChannels || !slices.Equal(c.Channels, []string{"room:*", "news", "*"}) || string(c.Info) != `{"name":"Ann"}` {
		t.Fatalf("claims = %+v", c)
	}

	c = mustVerify(t, v, signHS(t, claims{"sub": "u1"}))
	if !c.Expires.IsZero() || c.HasChannels || c.Channels != nil || c.Info != nil {
		t.Fatalf("without exp, channels, info: %+v", c)
	}

	c = mustVerify(t, v, signHS(t, claims{"sub": "u1", "channels": []string{}}))
	if !c.HasChannels || c.Channels == nil || len(c.Channels) != 0 {
		t.Fatalf("empty channels: %+v", c)
	}

	c = mustVerify(t, v, signHS(t, claims{"sub": "u1", "channels": []string{"room:*", "news"}}))
	if !slices.Equal(c.Channels, []string{"room:*", "news"}) {
		t.Fatalf("channels = %q", c.Channels)
	}

	// Issuer and audience are not checked unless configured.
	mustVerify(t, v, signHS(t, claims{"sub": "u1", "iss": "anyone", "aud": []string{"x"}}))
	// HS384 and HS512 verify against the same secrets.
	mustVerify(t, v, sign(t, "HS384", secretA, nil, claims{"sub": "u1"}))
	mustVerify(t, v, sign(t, "HS512", secretA, nil, claims{"sub": "u1"}))
	// kid means nothing to HMAC secrets.
	mustVerify(t, v, sign(t, "HS256", secretA, map[string]any{"kid": "k1"}, claims{"sub": "u1"}))
}

func TestVerifyAudienceForms(t *testing.T) {
	v := newVerifier(t, Config{Secrets: [][]byte{secretA}, Audience: testAudience})
	mustVerify(t, v, signHS(t, claims{"sub": "u1", "aud": testAudience}))
	mustVerify(t, v, signHS(t, claims{"sub": "u1", "aud": []string{"other", testAudience}}))
}

func TestVerifyFractionalNumericDates(t *testing.T) {
	v := newVerifier(t, Config{Secrets: [][]byte{secretA}})
	now := float64(time.Now().Unix()) // whole, so that the fractions below print exactly
	p := fmt.Sprintf(`{"sub":"u1","exp":%.3f,"nbf":%.3f,"iat":%.3f}`, now+60.25, now-0.5, now-0.75)
	c := mustVerify(t, v, rawHS256(t, hsHeader, p, secretA))
	if want := time.Unix(int64(now+60.25), 0); !c.Expires.Equal(want) {
		t.Fatalf("Expires = %v, want %v (the fraction dropped)", c.Expires, want)
	}
	p = fmt.Sprintf(`{"sub":"u1","exp":%.3f}`, now-30.5)
	_, err := v.Verify(rawHS256(t, hsHeader, p, secretA))
	wantReason(t, err, ReasonExpired)
}

func TestVerifyLeeway(t *testing.T) {
	wide := newVerifier(t, Config{Secrets: [][]byte{secretA}, Leeway: 10 * time.Second})
	def := newVerifier(t, Config{Secrets: [][]byte{secretA}})
	for _, c := range []struct {
		name      string
		claims    claims
		wide, def string // the reasons with 10s and the default 1s leeway; "" = accepted
	}{
		{"expired 4s ago", claims{"sub": "u", "exp": in(-4 * time.Second)}, "", ReasonExpired},
		{"expired 20s ago", claims{"sub": "u", "exp": in(-20 * time.Second)}, ReasonExpired, ReasonExpired},
		{"valid from 4s on", claims{"sub": "u", "nbf": in(4 * time.Second)}, "", ReasonNotYetValid},
		{"valid from 20s on", claims{"sub": "u", "nbf": in(20 * time.Second)}, ReasonNotYetValid, ReasonNotYetValid},
		{"issued 4s ahead", claims{"sub": "u", "iat": in(4 * time.Second)}, "", ReasonIssuedInFuture},
		{"issued 20s ahead", claims{"sub": "u", "iat": in(20 * time.Second)}, ReasonIssuedInFuture, ReasonIssuedInFuture},
	} {
		t.Run(c.name, func(t *testing.T) {
			tok := signHS(t, c.claims)
			for _, x := range []struct {
				name string
				v    *Verifier
				want string
			}{{"10s", wide, c.wide}, {"default", def, c.def}} {
				_, err := x.v.Verify(tok)
				if x.want == "" {
					if err != nil {
						t.Fatalf("leeway %s: %v", x.name, err)
					}
				} else {
					wantReason(t, err, x.want)
				}
			}
		})
	}
}

func TestVerifyRequireExp(t *testing.T) {
	v := newVerifier(t, Config{Secrets: [][]byte{secretA}, RequireExp: true})
	_, err := v.Verify(signHS(t, claims{"sub": "u1"}))
	wantReason(t, err, ReasonClaims)
	mustVerify(t, v, signHS(t, claims{"sub": "u1", "exp": in(time.Minute)}))
}

func TestVerifySecretRotation(t *testing.T) {
	secrets := [][]byte{append([]byte(nil), secretB...), secretA}
	v := newVerifier(t, Config{Secrets: secrets})
	clear(secrets[0]) // the Verifier keeps its own copy
	mustVerify(t, v, sign(t, "HS256", secretA, nil, claims{"sub": "old"}))
	mustVerify(t, v, sign(t, "HS256", secretB, nil, claims{"sub": "new"}))
	_, err := v.Verify(sign(t, "HS256", []byte("a third secret, 32 bytes long..."), nil, claims{"sub": "u"}))
	wantReason(t, err, ReasonSignature)
}

func TestVerifyAlgorithmConfusion(t *testing.T) {
	k := testKeys()
	rsaPEM := pemOf(t, &k.rsa.PublicKey)
	keys, err := ParsePublicKeys(rsaPEM)
	if err != nil {
		t.Fatal(err)
	}
	forged := sign(t, "HS256", rsaPEM, nil, claims{"sub": "admin"})

	// Only an RSA key: HS256 is not an algorithm this Verifier accepts.
	v := newVerifier(t, Config{PublicKeys: keys})
	_, err = v.Verify(forged)
	wantReason(t, err, ReasonAlgorithm)
	mustVerify(t, v, sign(t, "RS256", k.rsa, nil, claims{"sub": "u1"}))

	// Secrets too: HS256 is checked against the secrets only, never the PEM.
	v = newVerifier(t, Config{PublicKeys: keys, Secrets: [][]byte{secretA}})
	_, err = v.Verify(forged)
	wantReason(t, err, ReasonSignature)

	// Nor the other way round: an RS256 token cannot use a secret.
	v = newVerifier(t, Config{Secrets: [][]byte{secretA}})
	_, err = v.Verify(sign(t, "RS256", k.rsa, nil, claims{"sub": "u1"}))
	wantReason(t, err, ReasonAlgorithm)

	// ES384 against a P-256 key only: no key of that algorithm.
	v = newVerifier(t, Config{PublicKeys: []crypto.PublicKey{&k.p256.PublicKey}})
	_, err = v.Verify(sign(t, "ES384", k.p384, nil, claims{"sub": "u1"}))
	wantReason(t, err, ReasonAlgorithm)
}

func TestVerifyConcurrent(t *testing.T) {
	v := newVerifier(t, Config{Secrets: [][]byte{secretA}})
	good, bad := signHS(t, claims{"sub": "u1"}), signHS(t, claims{"sub": ""})
	done := make(chan error, 4)
	for range 4 {
		go func() {
			for range 200 {
				if _, err := v.Verify(good); err != nil {
					done <- err
					return
				}
				if _, err := v.Verify(bad); ReasonOf(err) != ReasonSub {
					done <- fmt.Errorf("bad token: %v", err)
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func TestMalformedDoesNotAllocate(t *testing.T) {
	v := newVerifier(t, Config{Secrets: [][]byte{secretA}})
	junk := strings.Repeat("x", MaxTokenLen+1)
	n := testing.AllocsPerRun(100, func() {
		v.Verify(junk)
		v.Verify("a.b")
		v.Verify("a.b.c.d")
		v.Verify("a b.c.d")
	})
	if n != 0 {
		t.Fatalf("malformed tokens allocate %v times", n)
	}
}
