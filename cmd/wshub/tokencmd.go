package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/wshub/wshub/hub/auth"
)

// tokenFlags are the flags of `wshub token` itself; every other argument is
// a gateway setting (--config, --jwt-secret), read as the gateway reads it.
var tokenFlags = map[string]bool{"sub": true, "channels": true, "ttl": true, "info": true, "alg": true}

// tokenCommand mints a development token with the configured HS secret
// (the first of --jwt-secret, WSHUB_JWT_SECRET or auth.jwt_secret), so that
// the README's demo can show authentication end to end:
//
//	wshub token --jwt-secret S --sub alice --channels 'room:*' --ttl 1h
func tokenCommand(args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	own, rest := splitTokenArgs(args)
	fs := flag.NewFlagSet("wshub token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sub := fs.String("sub", "", "the token's sub: the user id (required)")
	channels := fs.String("channels", "", "comma-separated channels claim: names and prefix:* patterns (absent: the namespaces alone decide)")
	ttl := fs.Duration("ttl", time.Hour, "lifetime: exp is now plus this (0: no exp)")
	info := fs.String("info", "", "the info claim, a JSON object")
	alg := fs.String("alg", "HS256", "HS256, HS384 or HS512")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: wshub token --sub USER [--channels LIST] [--ttl 1h] [--info JSON] [gateway settings: --jwt-secret S or --config FILE]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(own); err != nil {
		return exitCode(err, stderr)
	}
	if *sub == "" {
		fmt.Fprintln(stderr, "wshub token: --sub is required")
		return 2
	}
	c, err := parseConfig(rest, lookupEnv, stderr)
	if err != nil {
		return exitCode(err, stderr)
	}
	if len(c.JWTSecrets) == 0 {
		fmt.Fprintln(stderr, "wshub token: no HS secret configured: give --jwt-secret (or WSHUB_JWT_SECRET, or auth.jwt_secret in --config)")
		return 2
	}
	var list []string
	if *channels != "" {
		list = strings.Split(*channels, ",")
	}
	var infoJSON json.RawMessage
	if *info != "" {
		infoJSON = json.RawMessage(*info)
	}
	tok, err := auth.Mint([]byte(c.JWTSecrets[0]), *alg, *sub, list, *ttl, infoJSON)
	if err != nil {
		fmt.Fprintln(stderr, "wshub token:", err)
		return 2
	}
	fmt.Fprintln(stdout, tok)
	return 0
}

// splitTokenArgs separates token's own flags (with their values) from the
// gateway settings.
func splitTokenArgs(args []string) (own, rest []string) {
	for i := 0; i < len(args); i++ {
		name, _, inline := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if !strings.HasPrefix(args[i], "-") || !tokenFlags[name] {
			rest = append(rest, args[i])
			continue
		}
		own = append(own, args[i])
		if !inline && i+1 < len(args) {
			i++
			own = append(own, args[i])
		}
	}
	return own, rest
}
