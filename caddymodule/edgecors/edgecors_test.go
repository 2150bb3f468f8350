package edgecors

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func provisionOnly(t *testing.T, h *Handler) error {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		t.Fatalf("Provision must not fail, Validate reports: %v", err)
	}
	return h.Validate()
}

func TestValidateRefusesWithWhatToWriteInstead(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    Handler
		want []string
	}{
		{"no origins", Handler{}, []string{`edge_cors: no origins; list the origins your pages are served from`}},
		{"star with credentials", Handler{Origins: []string{"*"}, Credentials: true},
			[]string{`edge_cors: origin "*" with credentials would let every site act with your users' cookies`}},
		{"star with others", Handler{Origins: []string{"*", "https://a.com"}}, []string{`origin "*" already allows every origin`}},
		{"origin from JSON", Handler{Origins: []string{"http://localhost:5000/"}},
			[]string{`edge_cors: origin "http://localhost:5000/" has a path; write it as "http://localhost:5000"`}},
		{"max_age too long", Handler{Origins: []string{"https://a.com"}, MaxAge: caddy.Duration(25 * time.Hour)}, []string{"write at most 24h"}},
		{"max_age negative", Handler{Origins: []string{"https://a.com"}, MaxAge: caddy.Duration(-time.Second)}, []string{"is negative"}},
		{"max_age under a second", Handler{Origins: []string{"https://a.com"}, MaxAge: caddy.Duration(time.Millisecond)}, []string{"write at least 1s"}},
		{"method wildcard", Handler{Origins: []string{"https://a.com"}, AllowedMethods: []string{"*"}}, []string{`allowed_methods "*" is not supported`}},
		{"every problem at once", Handler{Origins: []string{"null", "https://*.com"}, MaxAge: caddy.Duration(48 * time.Hour)},
			[]string{`origin "null"`, `public suffix "com"`, "write at most 24h"}},
	} {
		err := provisionOnly(t, &tc.h)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error\n  %v\nwant it to contain\n  %s", tc.name, err, w)
			}
		}
	}
}

func TestProvisionNormalisesJSONConfig(t *testing.T) {
	h := Handler{
		Origins:        []string{"HTTPS://App.Example.com:443", "https://app.example.com", "http://[0::1]:5000"},
		AllowedMethods: []string{"get", "put", "patch"},
	}
	if err := provisionOnly(t, &h); err != nil {
		t.Fatal(err)
	}
	if want := []string{"https://app.example.com", "http://[::1]:5000"}; !slices.Equal(h.Origins, want) {
		t.Errorf("Origins = %q, want %q", h.Origins, want)
	}
	// fetch uppercases GET and PUT but sends "patch" as written.
	if want := []string{"GET", "PUT", "patch"}; !slices.Equal(h.AllowedMethods, want) {
		t.Errorf("AllowedMethods = %q, want %q", h.AllowedMethods, want)
	}
	if !slices.Equal(h.AllowedHeaders, defaultHeaders) {
		t.Errorf("AllowedHeaders = %q, want the defaults", h.AllowedHeaders)
	}
}
