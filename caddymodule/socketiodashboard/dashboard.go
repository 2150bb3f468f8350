// Package socketiodashboard is the socketio_dashboard HTTP handler: a live
// page for operators showing what a socketio_proxy is doing, and what the
// edge has refused.
package socketiodashboard

import (
	"context"
	"embed"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/flaskedge/flaskedge/caddymodule/socketioproxy"
	"github.com/flaskedge/flaskedge/internal/identity"
	"github.com/flaskedge/flaskedge/internal/security"

	"github.com/flaskedge/flaskedge/internal/pathdirective"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler serves the live dashboard: the sessions of the socketio_proxy
// on EngineIOPath by worker and transport, its workers' health, its
// namespace rules and the live sessions of each namespace, the edge's
// message and byte counts (the page shows their rates), refusals by
// reason and the recent security events of every module. Under Path:
//
//	<path>             the page (HTML, CSS and JS embedded in the binary)
//	<path>data.json    the figures as JSON (see Data)
//	<path>events       the same figures every second, as Server-Sent Events
//
// The bare path without its trailing slash redirects to the page; other
// paths under Path are 404, and every request outside Path goes to the
// next handler.
//
// The handler has no access control of its own: the page shows client
// addresses, origins and user ids, so put it behind the edge's
// authentication, in a route of its own:
//
//	route /_edge/dashboard/* {
//		flask_session {
//			secret_key {env.FLASK_SECRET_KEY}
//			require role admin
//		}
//		socketio_dashboard
//	}
//
// flask_session then answers 401 to anyone else and logs a role_denied
// event for a user without the role, which the page shows. The handler
// logs a warning, once per config, when it serves a request that no
// authentication handler has verified a user for.
type Handler struct {
	// Path is the prefix the dashboard is served under, e.g.
	// "/_edge/dashboard/". It must start and end with a slash and must
	// not overlap EngineIOPath. No placeholders. Default:
	// "/_edge/dashboard/".
	Path string `json:"path,omitempty"`

	// EngineIOPath selects the socketio_proxy whose workers, sessions
	// and namespace rules the dashboard shows: the one serving this
	// Engine.IO path (socketio_proxy's path) in the running config. No
	// placeholders. Default: "/socket.io/".
	EngineIOPath string `json:"engineio_path,omitempty"`

	// done ends the config's event streams when it is cleaned up, so a
	// browser reconnects to the config that replaced it.
	done   context.Context
	cancel context.CancelFunc
	logger *zap.Logger
	// warnedPublic and warnedUnserved are set once the handler has
	// logged that it serves requests without a verified user, or that no
	// socketio_proxy serves EngineIOPath.
	warnedPublic, warnedUnserved *atomic.Bool
}

// Defaults of the Handler's fields.
const (
	DefaultPath         = "/_edge/dashboard/"
	DefaultEngineIOPath = socketioproxy.DefaultPath
)

// How often the event stream sends the figures, and how long one stream
// lasts: the browser then reconnects on its own, and the edge's
// authentication checks its session again.
var (
	streamInterval = time.Second
	streamFor      = 5 * time.Minute
)

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.socketio_dashboard",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets defaults and compares the Engine.IO path with the
// edge_cors in front.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.Path == "" {
		h.Path = DefaultPath
	}
	if h.EngineIOPath == "" {
		h.EngineIOPath = DefaultEngineIOPath
	}
	h.crossCheck(ctx)
	h.done, h.cancel = context.WithCancel(context.Background())
	h.warnedPublic, h.warnedUnserved = new(atomic.Bool), new(atomic.Bool)
	return nil
}

// Validate checks the configuration.
func (h *Handler) Validate() error {
	return pathdirective.Validate("socketio_dashboard", h.Path, h.EngineIOPath, DefaultPath)
}

// Cleanup ends the config's event streams.
func (h *Handler) Cleanup() error {
	if h.cancel != nil {
		h.cancel()
	}
	return nil
}

//go:embed assets
var assetFiles embed.FS

type asset struct {
	contentType string
	body        []byte
}

// assets are the page's files, served as they are.
var assets = func() map[string]asset {
	out := map[string]asset{}
	for name, typ := range map[string]string{
		"index.html":    "text/html; charset=utf-8",
		"dashboard.css": "text/css; charset=utf-8",
		"dashboard.js":  "text/javascript; charset=utf-8",
	} {
		body, err := assetFiles.ReadFile("assets/" + name)
		if err != nil {
			panic(err)
		}
		out[name] = asset{typ, body}
	}
	return out
}()

// ServeHTTP serves the dashboard under Path and passes every other
// request on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	bare := strings.TrimSuffix(h.Path, "/")
	if r.URL.Path != bare && !strings.HasPrefix(r.URL.Path, h.Path) {
		return next.ServeHTTP(w, r)
	}
	h.warnIfPublic(r)
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "405 Method Not Allowed", http.StatusMethodNotAllowed)
		return nil
	}
	if r.URL.Path == bare {
		target := h.Path
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, target, http.StatusMovedPermanently)
		return nil
	}
	switch sub := r.URL.Path[len(h.Path):]; sub {
	case "dashboard.css", "dashboard.js":
		// The page's code, which holds no data.
		hdr.Set("Cache-Control", "no-cache")
		writeAsset(w, r, assets[sub])
	case "":
		hdr.Set("Cache-Control", "no-store")
		writeAsset(w, r, assets["index.html"])
	case "data.json":
		body, _ := json.Marshal(h.data())
		hdr.Set("Cache-Control", "no-store")
		hdr.Set("Content-Type", "application/json")
		if r.Method != http.MethodHead {
			_, _ = w.Write(body)
		}
	case "events":
		hdr.Set("Cache-Control", "no-store")
		h.stream(w, r)
	default:
		http.Error(w, "404 Not Found", http.StatusNotFound)
	}
	return nil
}

func writeAsset(w http.ResponseWriter, r *http.Request, a asset) {
	w.Header().Set("Content-Type", a.contentType)
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(a.body)
}

// warnIfPublic logs, once, a request that reached the dashboard without
// a verified user: no authentication handler runs in front of it, or one
// that lets anonymous visitors through.
func (h *Handler) warnIfPublic(r *http.Request) {
	if !identity.Of(r).Anonymous() || h.warnedPublic.Swap(true) {
		return
	}
	h.logger.Warn("the dashboard served a request without a verified user: anyone can see it; put it behind the edge's authentication, e.g. route "+h.Path+"* { flask_session { secret_key ...; require role admin } socketio_dashboard }",
		zap.String("path", h.Path), zap.String("remote_ip", security.ClientIP(r)))
}

// Data is the JSON of the dashboard's data endpoint and of each event of
// its stream: the socketio_proxy snapshot of EngineIOPath and the edge's
// refusals and security events.
type Data struct {
	socketioproxy.Snapshot
	// Serving is false when no socketio_proxy of the running config
	// serves EngineIOPath: the snapshot then has no worker.
	Serving bool `json:"serving"`
	// Refusals by reason, as caddy_socketio_refusals_total counts them
	// for every module of the process.
	Refusals map[string]uint64 `json:"refusals"`
	// Events are the recent security events of every module, newest
	// first.
	Events []security.Record `json:"events"`
}

func (h *Handler) data() Data {
	snap, serving := socketioproxy.Observe(h.EngineIOPath)
	if !serving && !h.warnedUnserved.Swap(true) {
		h.logger.Warn("no socketio_proxy of the running config serves the dashboard's engineio_path; set engineio_path to socketio_proxy's path",
			zap.String("engineio_path", h.EngineIOPath))
	}
	return Data{Snapshot: snap, Serving: serving, Refusals: security.RefusalCounts(), Events: security.Recent()}
}

// stream sends the figures every streamInterval as Server-Sent Events,
// until the client leaves, the config is replaced, the process begins to
// exit or streamFor has passed.
func (h *Handler) stream(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	tick := time.NewTicker(streamInterval)
	defer tick.Stop()
	end := time.NewTimer(streamFor)
	defer end.Stop()
	buf := []byte("retry: 2000\n\n")
	for {
		body, _ := json.Marshal(h.data())
		buf = append(append(append(buf, "data: "...), body...), "\n\n"...)
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := w.Write(buf); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		buf = buf[:0]
		select {
		case <-tick.C:
			// A stream is an active request: Caddy's shutdown would
			// wait for it.
			if caddy.Exiting() {
				return
			}
		case <-r.Context().Done():
			return
		case <-h.done.Done():
			return
		case <-end.C:
			return
		}
	}
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
