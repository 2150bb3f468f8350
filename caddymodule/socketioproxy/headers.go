package socketioproxy

import (
	"net/http"
	"strings"

	"github.com/flaskedge/flaskedge/internal/security"
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
// X-Forwarded-* headers, which the edge sets itself rather than trusting
// copies from the client.
func upstreamHeader(r *http.Request, websocket bool) http.Header {
	h := r.Header.Clone()
	removeHopHeaders(h)
	if websocket {
		for _, k := range webSocketHandshakeHeaders {
			h.Del(k)
		}
	}
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	h.Set("X-Forwarded-For", security.ClientIP(r))
	h.Set("X-Forwarded-Proto", proto)
	h.Set("X-Forwarded-Host", r.Host)
	h.Del("Forwarded")
	if websocket {
		// gorilla's dialer takes the Host from this header.
		h.Set("Host", r.Host)
	}
	return h
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
