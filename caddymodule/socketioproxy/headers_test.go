package socketioproxy

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/stretchr/testify/assert"
)

// X-Forwarded-* reach the worker as reverse_proxy sends them: extended
// from a trusted proxy, replaced for anyone else.
func TestForwardedHeadersFollowTrustedProxies(t *testing.T) {
	for _, tc := range []struct {
		trusted             bool
		xff, proto, host    string
		wantXFF, wantProto  string
		wantHost, forwarded string
	}{
		{false, "6.6.6.6", "https", "evil.example", "10.0.0.9", "http", "app.example", ""},
		{true, "203.0.113.5", "https", "app.example", "203.0.113.5, 10.0.0.9", "https", "app.example", "for=203.0.113.5"},
		{true, "", "", "", "10.0.0.9", "http", "app.example", "for=203.0.113.5"},
	} {
		r := httptest.NewRequest("GET", "http://app.example/socket.io/?EIO=4&transport=polling", nil)
		r.RemoteAddr = "10.0.0.9:4711"
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
			r.Header.Set("X-Forwarded-Proto", tc.proto)
			r.Header.Set("X-Forwarded-Host", tc.host)
		}
		r.Header.Set("Forwarded", "for=203.0.113.5")
		vars := map[string]any{caddyhttp.TrustedProxyVarKey: tc.trusted}
		r = r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, vars))
		h := upstreamHeader(r, false)
		assert.Equal(t, tc.wantXFF, h.Get("X-Forwarded-For"), "trusted=%v", tc.trusted)
		assert.Len(t, h.Values("X-Forwarded-For"), 1)
		assert.Equal(t, tc.wantProto, h.Get("X-Forwarded-Proto"))
		assert.Equal(t, tc.wantHost, h.Get("X-Forwarded-Host"))
		assert.Equal(t, tc.forwarded, h.Get("Forwarded"))
	}
}

// X-Forwarded-Port and -Prefix (ProxyFix's x_port, x_prefix) are kept
// from a trusted proxy only.
func TestForwardedPortAndPrefixOnlyFromTrustedProxies(t *testing.T) {
	for _, trusted := range []bool{false, true} {
		r := httptest.NewRequest("GET", "http://app.example/socket.io/?EIO=4&transport=polling", nil)
		r.Header.Set("X-Forwarded-Port", "8443")
		r.Header.Set("X-Forwarded-Prefix", "/evil")
		vars := map[string]any{caddyhttp.TrustedProxyVarKey: trusted}
		r = r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, vars))
		h := upstreamHeader(r, true)
		want := map[bool][2]string{false: {"", ""}, true: {"8443", "/evil"}}[trusted]
		assert.Equal(t, want[0], h.Get("X-Forwarded-Port"), "trusted=%v", trusted)
		assert.Equal(t, want[1], h.Get("X-Forwarded-Prefix"), "trusted=%v", trusted)
	}
}
