package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// loader reads a JWKS document from where Config.JWKS says.
type loader func(ctx context.Context) ([]byte, error)

// isURL tells a JWKS URL from a file path.
func isURL(location string) bool {
	return strings.HasPrefix(location, "http://") || strings.HasPrefix(location, "https://")
}

// fileLoader reads the file at path each time, so that a replaced file (a
// rotated secret mount) is picked up on refetch.
func fileLoader(path string) loader {
	return func(context.Context) ([]byte, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readBounded(f)
	}
}

// httpLoader GETs location with client. A client without a timeout of its own
// still gets DefaultHTTPTimeout, so a hung server cannot hold the fetch.
func httpLoader(client *http.Client, location string) loader {
	return func(ctx context.Context) ([]byte, error) {
		if client.Timeout == 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, DefaultHTTPTimeout)
			defer cancel()
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, location, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				ue.URL = redactLocation(ue.URL) // the error is logged
			}
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("HTTP status %s", resp.Status)
		}
		return readBounded(resp.Body)
	}
}

// readBounded reads at most MaxJWKSSize bytes and fails on more.
func readBounded(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxJWKSSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxJWKSSize {
		return nil, fmt.Errorf("JWKS document larger than %d bytes", MaxJWKSSize)
	}
	return data, nil
}

// redactLocation keeps credentials out of logs: a URL is logged without its
// user info, query and fragment.
func redactLocation(loc string) string {
	if !isURL(loc) {
		return loc
	}
	u, err := url.Parse(loc)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}
