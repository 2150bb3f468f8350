package socketioproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/flaskedge/flaskedge/internal/engineio"
	"github.com/flaskedge/flaskedge/internal/relay"
)

// upgrader accepts the client's side of a proxied WebSocket. The Origin
// check belongs to edge_cors, which runs before this handler; the worker
// still sees the Origin header and may check it too.
var upgrader = websocket.Upgrader{
	// Zero read buffer size: reuse the buffer the HTTP server already
	// allocated for the connection.
	ReadBufferSize:    0,
	WriteBufferPool:   writeBuffers,
	EnableCompression: false,
	CheckOrigin:       func(*http.Request) bool { return true },
	Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
		// Only reached for a malformed upgrade; the caller checked the
		// request beforehand, so this is a client speaking broken HTTP.
		engineio.WriteError(w, engineio.CodeBadRequest)
	},
}

// maxRefusalBody bounds how much of a worker's refusal of an upgrade is
// passed back to the client.
const maxRefusalBody = 4096

// serveWebSocket connects the client's WebSocket to the worker's: the
// worker is dialled first, so that its refusal (an unknown sid, a refused
// origin) reaches the client as the HTTP reply it would have sent.
func (h *Handler) serveWebSocket(w http.ResponseWriter, r *http.Request, q engineio.Query, up *upstream) {
	if r.Method != http.MethodGet || !websocket.IsWebSocketUpgrade(r) {
		h.refuse(w, r, engineio.CodeBadRequest, "malformed", "transport=websocket without a WebSocket upgrade")
		return
	}
	upConn, res, err := up.dialer.DialContext(r.Context(), up.wsURL(r.URL.RequestURI()), upstreamHeader(r, true))
	if err != nil {
		if res != nil {
			h.passRefusal(w, r, up, res)
			return
		}
		if r.Context().Err() != nil {
			return
		}
		h.upstreamFailed(w, r, q, up, err)
		return
	}

	var respHeader http.Header
	if cookies := res.Header.Values("Set-Cookie"); len(cookies) > 0 {
		respHeader = http.Header{"Set-Cookie": cookies}
	}
	clientConn, err := upgrader.Upgrade(hijacker{w}, r, respHeader)
	if err != nil {
		upConn.Close()
		h.logDebug("client WebSocket upgrade failed", r, err)
		return
	}

	start := time.Now()
	err = relay.Relay(clientConn, upConn, relay.Options{MaxMessage: h.MaxPayload})
	if c := h.logger.Check(zapcore.DebugLevel, "WebSocket closed"); c != nil {
		c.Write(zap.String("upstream", up.addr), zap.String("remote_ip", clientIP(r)),
			zap.Duration("duration", time.Since(start)), zap.String("end", closeReason(err)))
	}
}

// passRefusal relays the worker's HTTP answer to an upgrade it refused.
func (h *Handler) passRefusal(w http.ResponseWriter, r *http.Request, up *upstream, res *http.Response) {
	defer res.Body.Close()
	if c := h.logger.Check(zapcore.DebugLevel, "worker refused WebSocket upgrade"); c != nil {
		c.Write(zap.String("upstream", up.addr), zap.Int("status", res.StatusCode))
	}
	removeHopHeaders(res.Header)
	res.Header.Del("Content-Length")
	copyHeader(w.Header(), res.Header)
	w.WriteHeader(res.StatusCode)
	_, _ = io.Copy(w, io.LimitReader(res.Body, maxRefusalBody))
}

// hijacker lets gorilla's upgrader, which asserts http.Hijacker, take over
// a connection behind Caddy's response-writer wrappers, which offer
// hijacking through http.ResponseController instead.
type hijacker struct{ http.ResponseWriter }

func (h hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(h.ResponseWriter).Hijack()
}

func closeReason(err error) string {
	var ce *websocket.CloseError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &ce):
		return ce.Error()
	}
	return err.Error()
}
