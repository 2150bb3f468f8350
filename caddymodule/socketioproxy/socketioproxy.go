// Package socketioproxy is the socketio_proxy HTTP handler: a proxy that
// speaks Engine.IO v4 and Socket.IO v5 well enough to route, check and
// relay the traffic of Flask-SocketIO applications.
package socketioproxy

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/flaskedge/flaskedge/internal/engineio"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler proxies the Engine.IO traffic of a Flask-SocketIO application,
// both long-polling (GET and POST) and WebSocket, to its worker.
//
// A request is Engine.IO traffic when its path starts with Path. Such a
// request is checked before anything reaches the worker: its query must be
// an Engine.IO v4 query that python-engineio cannot read differently from
// the edge (see engineio.ParseQuery), a polling body must fit in
// MaxPayload, and a WebSocket upgrade must be a real one. A refused
// request gets the Engine.IO error reply the client library understands
// and a log line saying why. Every other request goes to the next handler
// untouched, so socketio_proxy can stand in front of a reverse_proxy that
// serves the rest of the application.
//
// WebSocket messages are relayed one frame at a time, never buffered
// whole, and permessage-deflate is not negotiated on either side.
type Handler struct {
	// Upstreams are the network addresses of the Flask-SocketIO workers,
	// as host:port (an http:// prefix is accepted). Placeholders such as
	// {env.WORKER} are replaced once, when the config is loaded.
	Upstreams []string `json:"upstreams,omitempty"`

	// Path is the Engine.IO endpoint, the path prefix that
	// Flask-SocketIO's `path` option names. Default: "/socket.io/".
	Path string `json:"path,omitempty"`

	// MaxPayload is the largest polling request body and the largest
	// WebSocket message, in bytes, the edge relays from a client.
	// Default: 1000000, python-engineio's max_http_buffer_size.
	MaxPayload int64 `json:"max_payload,omitempty"`

	// DialTimeout bounds how long connecting to a worker may take.
	// Default: 5s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`

	upstreams []*upstream
	logger    *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.socketio_proxy",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Default values of the Handler's fields.
const (
	DefaultPath        = "/socket.io/"
	DefaultMaxPayload  = 1_000_000
	DefaultDialTimeout = 5 * time.Second
)

// Provision sets defaults and prepares the upstreams.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.Path == "" {
		h.Path = DefaultPath
	}
	if h.MaxPayload == 0 {
		h.MaxPayload = DefaultMaxPayload
	}
	if h.DialTimeout == 0 {
		h.DialTimeout = caddy.Duration(DefaultDialTimeout)
	}
	repl := caddy.NewReplacer()
	h.upstreams = h.upstreams[:0]
	for _, raw := range h.Upstreams {
		addr, err := parseUpstream(repl.ReplaceKnown(raw, ""))
		if err != nil {
			return err
		}
		h.upstreams = append(h.upstreams, newUpstream(addr, time.Duration(h.DialTimeout)))
	}
	return nil
}

// Validate checks the configuration.
func (h *Handler) Validate() error {
	switch {
	case len(h.upstreams) == 0:
		return errors.New("socketio_proxy: no upstream; name the Flask-SocketIO worker with `to 127.0.0.1:5001`")
	case len(h.upstreams) > 1:
		return fmt.Errorf("socketio_proxy: %d upstreams given; this version proxies to one worker", len(h.upstreams))
	case !strings.HasPrefix(h.Path, "/") || !strings.HasSuffix(h.Path, "/"):
		return fmt.Errorf("socketio_proxy: path %q must start and end with a slash, e.g. %q", h.Path, DefaultPath)
	case h.MaxPayload < 0:
		return fmt.Errorf("socketio_proxy: max_payload %d is negative", h.MaxPayload)
	}
	return nil
}

// Cleanup releases the upstreams' idle connections.
func (h *Handler) Cleanup() error {
	for _, u := range h.upstreams {
		u.close()
	}
	return nil
}

// ServeHTTP proxies Engine.IO requests and passes every other one on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if !strings.HasPrefix(r.URL.Path, h.Path) {
		return next.ServeHTTP(w, r)
	}
	q, err := engineio.ParseQuery(r.URL.RawQuery)
	if err != nil {
		var qe *engineio.QueryError
		if !errors.As(err, &qe) {
			qe = &engineio.QueryError{Code: engineio.CodeUnsupportedProtocolVersion, Reason: "no EIO parameter"}
		}
		h.refuse(w, r, qe.Code, "malformed", qe.Reason)
		return nil
	}
	up := h.upstreams[0]
	if q.Transport == engineio.WebSocket {
		h.serveWebSocket(w, r, q, up)
		return nil
	}
	h.servePolling(w, r, q, up)
	return nil
}

// refuse answers with an Engine.IO error and logs why; reason is one of
// the refusal kinds the metrics count (malformed, sid, size, upstream).
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, code engineio.ErrorCode, reason, detail string) {
	if c := h.logger.Check(zapcore.InfoLevel, "refused Engine.IO request"); c != nil {
		c.Write(
			zap.String("reason", reason),
			zap.String("detail", detail),
			zap.String("remote_ip", clientIP(r)),
			zap.String("method", r.Method),
			zap.String("uri", r.URL.Path),
		)
	}
	engineio.WriteError(w, code)
}

// clientIP is the client address Caddy determined, honouring the server's
// trusted_proxies.
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
