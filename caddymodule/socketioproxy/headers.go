package socketioproxy

import (
	"net"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// hopHeaders are the hop-by-hop headers of RFC 9110 section 7.6.1, which a
// proxy does not forward.
var hopHeaders = []string{
	"Connection",
	"Proxy-Connection",
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

// webSocketHandshakeHeaders are set by the WebSocket dialer itself.
var webSocketHandshakeHeaders = []string{
	"Sec-Websocket-Key",
	"Sec-Websocket-Version",
	"Sec-Websocket-Extensions",
	"Sec-Websocket-Protocol",
	"Sec-Websocket-Accept",
}

// upstreamHeader returns the headers to send the worker for r: the
// end-to-end headers the client sent, the client's Host, and the
// X-Forwarded-* headers as Caddy's reverse_proxy sets them. Their values
// from the request are kept only when it comes from a proxy the server
// trusts (the trusted_proxies server option): X-Forwarded-For is then
// extended with the peer's address, X-Forwarded-Proto and -Host are kept;
// from anyone else they are replaced, so a client cannot make the worker
// (Werkzeug's ProxyFix, say) believe another address.
func upstreamHeader(r *http.Request, websocket bool) http.Header {
	h := r.Header.Clone()
	removeHopHeaders(h)
	// The edge has read the body whole before it sends the request: a
	// worker must not answer 100 Continue to an expectation that is the
	// client's, not the edge's.
	h.Del("Expect")
	if websocket {
		for _, k := range webSocketHandshakeHeaders {
			h.Del(k)
		}
	}
	trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool)
	peer, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		peer = ""
	}
	peer, _, _ = strings.Cut(peer, "%")
	if prior := strings.Join(h.Values("X-Forwarded-For"), ", "); trusted && prior != "" && peer != "" {
		h.Set("X-Forwarded-For", prior+", "+peer)
	} else if peer != "" {
		h.Set("X-Forwarded-For", peer)
	} else if !trusted {
		h.Del("X-Forwarded-For")
	}
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	if prior := lastValue(h, "X-Forwarded-Proto"); !trusted || prior == "" {
		h.Set("X-Forwarded-Proto", proto)
	} else {
		h.Set("X-Forwarded-Proto", prior)
	}
	if prior := lastValue(h, "X-Forwarded-Host"); !trusted || prior == "" {
		h.Set("X-Forwarded-Host", r.Host)
	} else {
		h.Set("X-Forwarded-Host", prior)
	}
	if !trusted {
		// The other headers by which a proxy vouches for the request:
		// ProxyFix's x_port and x_prefix read X-Forwarded-Port and
		// -Prefix (SERVER_PORT, SCRIPT_NAME: the URLs url_for builds).
		for _, k := range untrustedForwarded {
			h.Del(k)
		}
	}
	if websocket {
		// gorilla's dialer takes the Host from this header.
		h.Set("Host", r.Host)
	}
	return h
}

// untrustedForwarded are the headers a proxy sets for its upstream that
// upstreamHeader does not set itself: from a client the server does not
// trust they are removed.
var untrustedForwarded = []string{"Forwarded", "X-Forwarded-Port", "X-Forwarded-Prefix"}

// lastValue is the last value of a header, as reverse_proxy reads
// X-Forwarded-Proto and -Host.
func lastValue(h http.Header, key string) string {
	vv := h.Values(key)
	if len(vv) == 0 {
		return ""
	}
	return vv[len(vv)-1]
}

// removeHopHeaders deletes the hop-by-hop headers, including any the
// Connection header names.
func removeHopHeaders(h http.Header) {
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
}

// copyHeader adds every value of src to dst.
func copyHeader(dst, src http.Header) {
	for k, vv := range src {
		for _, v := range vv {
			dst.Add(k, v)
		}
	}
}
