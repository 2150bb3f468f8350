package edgecors

import (
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/flaskedge/flaskedge/internal/engineio"
)

// The requests CORS alone does not stop: a browser sends a WebSocket
// upgrade to any origin and reads the socket (no CORS applies), and sends
// a long-polling handshake as a simple GET, so the worker creates the
// Engine.IO session before the browser decides the page may not read
// the answer. Nor does CORS stop the later requests of a session: a page
// on any site can make a browser POST a text/plain body (a Socket.IO
// CONNECT, say) to a session whose sid it knows, with the browser's
// cookies, and CORS only keeps the page from reading the answer. The
// guard refuses all of them, from a foreign origin, with 403 before any
// later handler runs.

// guarded reports whether r is a WebSocket upgrade (any path) or an
// Engine.IO request (under the Engine.IO path), and which.
func (h *Handler) guarded(r *http.Request) (what string, ok bool) {
	if isWebSocketUpgrade(r) {
		return "WebSocket upgrade", true
	}
	if !strings.HasPrefix(engineio.WorkerPath(r.URL.EscapedPath()), h.engineIOPath) {
		return "", false
	}
	if h.isEngineIOHandshake(r) {
		return "Engine.IO handshake", true
	}
	return guardSessionRequest, true
}

// guardSessionRequest is what guarded calls a request of an existing
// Engine.IO session.
const guardSessionRequest = "Engine.IO request of a session"

// isEngineIOHandshake reports whether r, under the Engine.IO path, is
// one python-engineio would treat as a new session: its query has no
// non-empty sid. That takes in every handshake whatever its EIO,
// transport or method (a request without EIO=4 is refused by the worker
// anyway), and reads the query as the worker's parse_qs does: '&'
// separates, keys are percent-decoded with '+' as a space, and a blank
// or '='-less sid does not count.
func (h *Handler) isEngineIOHandshake(r *http.Request) bool {
	return !engineio.HasParam(r.URL.RawQuery, "sid")
}

// isWebSocketUpgrade reports whether r asks to become a WebSocket: an
// HTTP/1.1 Upgrade, or an extended CONNECT over HTTP/2 (:protocol
// pseudo-header) or HTTP/3 (which quic-go puts in r.Proto).
func isWebSocketUpgrade(r *http.Request) bool {
	if r.Method == http.MethodConnect {
		return r.ProtoMajor == 2 && r.Header.Get(":protocol") == "websocket" ||
			r.ProtoMajor == 3 && r.Proto == "websocket"
	}
	return httpguts.HeaderValuesContainsToken(r.Header["Upgrade"], "websocket") &&
		httpguts.HeaderValuesContainsToken(r.Header["Connection"], "upgrade")
}
