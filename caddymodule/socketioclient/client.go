// Package socketioclient is the socketio_client HTTP handler: it serves
// the edge's browser client, an ES module that wraps a page's own
// socket.io-client with connection states, backoff, transport fallback
// and plain-language errors.
package socketioclient

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/flaskedge/flaskedge/caddymodule/socketioproxy"

	"github.com/flaskedge/flaskedge/internal/pathdirective"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler serves the browser client under Path:
//
//	<path>client.js     the ES module (edge-client.js, embedded)
//	<path>config.json   what the module needs to know of the edge
//
// and passes every other request on (edge_cors answers
// <client_path>diagnose under the same prefix). A page imports the
// module from the edge and hands it its socket.io-client:
//
//	import { connect } from "https://edge.example.com/socket.io-edge/client.js";
//	const client = connect(io, { namespace: "/admin", withCredentials: true });
//
// Both files are answered to GET and HEAD with an ETag and no-cache, so a
// browser revalidates them on every load: a new edge's client reaches
// pages at once and an unchanged one costs a 304. edge_cors's
// client_path must be the same prefix (its default is the same,
// /socket.io-edge/): edge_cors makes it public, any origin without
// credentials, since a page on a refused origin must still load the
// client to be told why it is refused.
type Handler struct {
	// Path is the prefix the client is served under. It must start and
	// end with a slash and must not overlap EngineIOPath. No
	// placeholders. Default: "/socket.io-edge/".
	Path string `json:"path,omitempty"`

	// EngineIOPath is the path of the socketio_proxy the client connects
	// through (socketio_proxy's path, socket.io-client's path option); a
	// warning is logged when no socketio_proxy of the running config
	// serves it. No placeholders. Default: "/socket.io/".
	EngineIOPath string `json:"engineio_path,omitempty"`

	files  map[string]file // by name under Path
	logger *zap.Logger
	// warnedUnserved is set once the handler has logged that no
	// socketio_proxy serves EngineIOPath.
	warnedUnserved *atomic.Bool
}

// Defaults of the Handler's fields.
const (
	DefaultPath         = "/socket.io-edge/"
	DefaultEngineIOPath = socketioproxy.DefaultPath
)

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.socketio_client",
		New: func() caddy.Module { return new(Handler) },
	}
}

//go:embed edge-client.js
var module []byte

// The Engine.IO timings the client reports in its messages:
// python-engineio 4's defaults. The edge does not configure the workers.
const (
	engineIOPingInterval = 25 * time.Second
	engineIOPingTimeout  = 20 * time.Second
)

// config is config.json: exactly what edge-client.js reads of it (its
// FALLBACK_CONFIG has the same keys). The field names are the module's
// contract.
type config struct {
	// Path is the Engine.IO path, socket.io-client's path option.
	Path string `json:"path"`
	// Transports is the fallback ladder: the client starts on the first
	// rung and moves to the next after TransportFailures failures in a
	// row that only the transport explains.
	Transports        [][]string `json:"transports"`
	TransportFailures int        `json:"transport_failures"`
	PingIntervalMS    int64      `json:"ping_interval_ms"`
	PingTimeoutMS     int64      `json:"ping_timeout_ms"`
	ConnectTimeoutMS  int64      `json:"connect_timeout_ms"`
	Reconnect         reconnect  `json:"reconnect"`
}

// reconnect is the client's backoff between attempts.
type reconnect struct {
	InitialDelayMS int64   `json:"initial_delay_ms"`
	MaxDelayMS     int64   `json:"max_delay_ms"`
	Factor         float64 `json:"factor"`
	Jitter         float64 `json:"jitter"`
}

// file is one file under Path.
type file struct {
	body        []byte
	etag        string
	contentType string
}

func newFile(body []byte, contentType string) file {
	sum := sha256.Sum256(body)
	return file{body: body, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`, contentType: contentType}
}

// Provision sets defaults, checks the paths against the edge_cors in
// front and makes the files.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.warnedUnserved = new(atomic.Bool)
	if h.Path == "" {
		h.Path = DefaultPath
	}
	if h.EngineIOPath == "" {
		h.EngineIOPath = DefaultEngineIOPath
	}
	if err := h.crossCheck(ctx); err != nil {
		return err
	}
	cfg := config{
		Path:              h.EngineIOPath,
		Transports:        [][]string{{"websocket"}, {"polling"}, {"polling", "websocket"}},
		TransportFailures: 2,
		PingIntervalMS:    engineIOPingInterval.Milliseconds(),
		PingTimeoutMS:     engineIOPingTimeout.Milliseconds(),
		// socket.io-client's, with room for a dial and a worker's answer.
		ConnectTimeoutMS: (20 * time.Second).Milliseconds(),
		// socketio_proxy takes a worker it cannot reach out of rotation
		// and moves a handshake that reaches it at once: a quick first
		// retry finds a live one, later ones spread out.
		Reconnect: reconnect{InitialDelayMS: 500, MaxDelayMS: 10_000, Factor: 2, Jitter: 0.5},
	}
	body, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("socketio_client: config.json: %v", err)
	}
	h.files = map[string]file{
		"client.js":   newFile(module, "application/javascript; charset=utf-8"),
		"config.json": newFile(body, "application/json"),
	}
	return nil
}

// Validate checks the configuration.
func (h *Handler) Validate() error {
	return pathdirective.Validate("socketio_client", h.Path, h.EngineIOPath, DefaultPath)
}

// ServeHTTP serves the client's files and passes every other request on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	name, ok := strings.CutPrefix(r.URL.Path, h.Path)
	if !ok {
		return next.ServeHTTP(w, r)
	}
	f, ok := h.files[name]
	if !ok {
		return next.ServeHTTP(w, r)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "socketio_client: the client files are read with GET", http.StatusMethodNotAllowed)
		return nil
	}
	if name == "config.json" && !socketioproxy.Serves(h.EngineIOPath) && !h.warnedUnserved.Swap(true) {
		h.logger.Warn("no socketio_proxy of the running config serves the client's engineio_path: its connections will fail; set engineio_path to socketio_proxy's path",
			zap.String("engineio_path", h.EngineIOPath))
	}
	hdr := w.Header()
	hdr.Set("Content-Type", f.contentType)
	hdr.Set("ETag", f.etag)
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
