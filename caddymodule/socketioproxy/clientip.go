package socketioproxy

import (
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/flaskedge/flaskedge/internal/security"
)

// limitIP is the client address the per-client limits (the connect rate,
// max_requests_per_ip) count a request under. It is Caddy's client_ip,
// except behind trusted proxies without trusted_proxies_strict: Caddy
// then takes the leftmost X-Forwarded-For entry, which the client writes
// itself (a trusted proxy appends to what it received), so each forged
// value would get a bucket of its own. The limits take instead, as
// trusted_proxies_strict does, the rightmost entry that is not a trusted
// proxy: the address the last trusted proxy saw.
func limitIP(r *http.Request) string {
	trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool)
	srv, _ := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if !trusted || srv == nil || srv.TrustedProxiesStrict > 0 {
		return security.ClientIP(r)
	}
	ranges := trustedRanges(srv)
	headers := srv.ClientIPHeaders
	if len(headers) == 0 {
		headers = []string{"X-Forwarded-For"}
	}
	for _, name := range headers {
		parts := strings.Split(strings.Join(r.Header.Values(name), ","), ",")
		for _, part := range slices.Backward(parts) {
			host, _, err := net.SplitHostPort(strings.TrimSpace(part))
			if err != nil {
				host = strings.TrimSpace(part)
			}
			host, _, _ = strings.Cut(host, "%")
			a, err := netip.ParseAddr(host)
			if err != nil {
				continue
			}
			// Without the ranges (a dynamic source), the rightmost
			// entry: the one the nearest trusted proxy wrote.
			if !slices.ContainsFunc(ranges, func(p netip.Prefix) bool { return p.Contains(a) }) {
				return a.String()
			}
		}
	}
	return security.ClientIP(r)
}

// serverRanges caches each server's static trusted_proxies ranges.
var serverRanges sync.Map // *caddyhttp.Server → []netip.Prefix

// trustedRanges reads the server's trusted_proxies when its source is
// "static"; nil for any other source.
func trustedRanges(srv *caddyhttp.Server) []netip.Prefix {
	if v, ok := serverRanges.Load(srv); ok {
		return v.([]netip.Prefix)
	}
	var src struct {
		Source string   `json:"source"`
		Ranges []string `json:"ranges"`
	}
	var out []netip.Prefix
	if json.Unmarshal(srv.TrustedProxiesRaw, &src) == nil && src.Source == "static" {
		for _, s := range src.Ranges {
			if p, err := caddyhttp.CIDRExpressionToPrefix(s); err == nil {
				out = append(out, p)
			}
		}
	}
	serverRanges.Store(srv, out)
	return out
}
