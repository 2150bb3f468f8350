// Package edgecors is the edge_cors HTTP handler: CORS for a Flask /
// Flask-SocketIO app decided at the edge, so the browser sees one answer
// whatever the app (or flask-cors, or python-engineio's own
// cors_allowed_origins) says.
//
// The handler answers preflights itself (204 when allowed, 403 with the
// reason logged when not; a preflight never reaches the app), sets
// exactly one Access-Control-Allow-Origin on responses to allowed
// origins, removes every Access-Control-* header the app set so the app
// can neither duplicate nor re-open what the edge decided, and refuses
// WebSocket upgrades from foreign origins before they reach anything.
package edgecors

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"golang.org/x/net/http/httpguts"

	"github.com/flaskedge/flaskedge/internal/security"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler is the edge_cors HTTP handler (module ID
// http.handlers.edge_cors). It owns every Access-Control-* response
// header on the routes it covers.
//
// A request whose Origin is its own scheme://Host (the Flask page
// calling its own API, or opening its own Socket.IO connection through
// the edge) is not a CORS request: it passes through without CORS
// headers, and is never refused, whether or not that origin is listed.
// The scheme is taken from the connection (TLS or not), as Caddy is the
// edge.
//
// Every response the handler covers carries Vary: Origin, merged into
// the app's Vary. Every refusal (a preflight, a WebSocket upgrade or an
// Engine.IO handshake) is a security event (internal/security) naming
// the origin and where the allowed set came from.
type Handler struct {
	// The origins whose pages may read responses. Each entry is one of:
	//
	//   - a serialized origin, scheme://host[:port], http or https,
	//     as in "https://app.example.com" or "http://localhost:5000";
	//   - a subdomain wildcard, as in "https://*.example.com", which
	//     matches subdomains of any depth but not example.com itself,
	//     and may not sit over a public suffix ("https://*.co.uk");
	//   - "*", any origin, only without credentials.
	//
	// Letter case, a default port (https://a.com:443) and the spelling
	// of an IPv6 address are normalised at Provision. A path (even "/"),
	// query, fragment, userinfo, trailing dot, "null" or a non-ASCII
	// host is an error that says what to write instead: hosts are ASCII,
	// so write an internationalized name in punycode (xn--...), which is
	// what the browser sends. Placeholders are not expanded. Required.
	Origins []string `json:"origins,omitempty"`

	// Adds the Flask app's own origins, derived at Provision from its
	// environment variables (FLASK_HOST, FLASK_PORT, and optionally a
	// public URL): see OriginsFromEnv. Default off.
	OriginsFromEnv *OriginsFromEnv `json:"origins_from_env,omitempty"`

	// In development only, also allow http and https origins on any
	// port of localhost, 127.0.0.1 and [::1], for front-end dev servers
	// (Vite, webpack) whose port moves. Refused in other stages, as it
	// lets any local process's page in. Default false.
	AnyLoopbackPort bool `json:"any_loopback_port,omitempty"`

	// Lets allowed origins make credentialed requests (cookies, the
	// Flask session): sends Access-Control-Allow-Credentials: true.
	// socket.io-client with withCredentials: true needs it. Not allowed
	// with "*". Default false.
	Credentials bool `json:"credentials,omitempty"`

	// The methods a preflight may ask for. GET, HEAD and POST are always
	// allowed, as the browser does not consult the list for them.
	// Methods are case-sensitive, but fetch uppercases DELETE, GET,
	// HEAD, OPTIONS, POST and PUT, so those are uppercased here; a
	// client sending "patch" needs "patch" listed. Default: GET HEAD
	// POST PUT PATCH DELETE.
	AllowedMethods []string `json:"allowed_methods,omitempty"`

	// The request headers a preflight may ask for, compared without
	// regard to case. The default lets fetch send JSON and Flask-WTF's
	// CSRF header: Content-Type X-Requested-With X-CSRFToken
	// X-CSRF-Token. socket.io-client sends none unless given
	// extraHeaders.
	AllowedHeaders []string `json:"allowed_headers,omitempty"`

	// Response headers, beyond the CORS-safelisted ones, that scripts
	// of allowed origins may read: sent as Access-Control-Expose-Headers.
	// Retry-After is always exposed, first: socketio_proxy answers a
	// handshake over its rate limit with 429 and Retry-After, and the
	// browser client (client_path) reads it to know how long to wait.
	// Default: Retry-After alone.
	ExposeHeaders []string `json:"expose_headers,omitempty"`

	// How long a browser may cache a preflight's answer
	// (Access-Control-Max-Age), whole seconds, at most 24h. Chromium
	// caps it at 2h. Default 0: no header, so browsers cache for 5s.
	MaxAge caddy.Duration `json:"max_age,omitempty"`

	// Refuse with 403, before any other handler runs, a WebSocket
	// upgrade (HTTP/1.1 Upgrade, or an HTTP/2 or HTTP/3 extended
	// CONNECT, on any path) or an Engine.IO handshake (a request under
	// EngineIOPath without a sid, long-polling or WebSocket) whose
	// Origin is present, not the request's own origin and either not
	// allowed or "null". Browsers do not apply CORS to WebSockets, and
	// send a polling handshake as a simple GET that creates the session
	// before CORS hides the answer, so without this any site could open
	// a Socket.IO session with the user's cookies. Requests without an
	// Origin (non-browser clients) pass unless RequireOrigin. Default
	// true.
	WebSocketOriginGuard *bool `json:"websocket_origin_guard,omitempty"`

	// With the guard on, also refuse WebSocket upgrades and Engine.IO
	// handshakes that carry no Origin at all. Every browser sends one on
	// both, so this shuts out only non-browser clients (scripts, other
	// services, socket.io-client under Node). Default false.
	RequireOrigin bool `json:"require_origin,omitempty"`

	// The Engine.IO endpoint, a path prefix: requests under it without
	// a sid are handshakes, which the guard covers. It should be
	// socketio_proxy's path and the client's path option. Default
	// /socket.io/.
	EngineIOPath string `json:"engineio_path,omitempty"`

	// Answer Private Network Access preflights (those carrying
	// Access-Control-Request-Private-Network: true, which Chromium sent
	// when a public page called a private address) with
	// Access-Control-Allow-Private-Network: true, for allowed origins.
	// Off, such preflights get 403: a public edge has no business
	// opening the visitor's LAN unless the app is meant for it. Default
	// false.
	AllowPrivateNetwork bool `json:"allow_private_network,omitempty"`

	// The path prefix under which socketio_client serves the browser
	// client (its path). GET and HEAD requests under it, other
	// than WebSocket upgrades, are public resources: their responses
	// carry Access-Control-Allow-Origin: * and never credentials,
	// whatever the Origin, so that a page on an origin this handler
	// refuses can still load the client and be told why it is refused.
	// Default /socket.io-edge/.
	ClientPath string `json:"client_path,omitempty"`

	// Answer GET <client_path>diagnose, for any origin and without
	// credentials, with whether the request's Origin (or the origin
	// query parameter) is allowed, and when it is not, why, which
	// origins are and where each comes from (the explicit list, the
	// environment variables origins_from_env read, the development
	// profile), so the browser client can say what to change. It never
	// shows a secret, a variable other than those origins_from_env
	// names, or a cookie. Default: on in development and staging, off
	// otherwise.
	Diagnostics *bool `json:"diagnostics,omitempty"`

	// The deployment stage: development, staging or production. In
	// production, "*", http:// origins and loopback origins (localhost,
	// *.localhost, 127.0.0.0/8, [::1]) are refused. Default: the value
	// of APP_ENV, else of FLASK_ENV, read at Provision; when neither is
	// set, no stage's rules apply.
	Environment string `json:"environment,omitempty"`

	patterns          []originPattern
	origins           originSet
	source            string // where the allowed set came from, for security events
	envSource         string // where Environment came from, for errors
	methods           []string
	headers           []string
	maxRequestHeaders int      // see firstDisallowedHeader
	exposeValue       []string // Access-Control-Expose-Headers
	maxAgeValue       []string // Access-Control-Max-Age, nil when none
	varyPreflight     vary
	engineIOPath      string
	clientPath        string
	diagnose          *diagnostics // nil when diagnostics are off
	problems          []error      // found while normalising; Validate reports them
	logger            *zap.Logger
	security          *zap.Logger
	guardEnabled      bool
}

// Defaults for the preflight lists.
var (
	defaultMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}
	defaultHeaders = []string{"Content-Type", "X-Requested-With", "X-CSRFToken", "X-CSRF-Token"}
)

// defaultEngineIOPath is python-engineio's and socket.io-client's.
const defaultEngineIOPath = "/socket.io/"

// defaultClientPath is socketio_client's default path.
const defaultClientPath = "/socket.io-edge/"

// maxMaxAge is Firefox's cap; more only misleads the reader.
const maxMaxAge = 24 * time.Hour

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.edge_cors",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision fills in defaults and normalises the configuration to the
// canonical forms the hot path compares against. Whatever it cannot
// normalise it records for Validate to report, all at once.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.security = security.Logger()
	if err := security.RegisterMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("edge_cors: registering metrics: %w", err)
	}
	h.guardEnabled = h.WebSocketOriginGuard == nil || *h.WebSocketOriginGuard
	h.problems = nil
	h.Environment, h.envSource = resolveEnvironment(h.Environment)

	var patterns []originPattern
	var canonical []string
	add := func(p originPattern) {
		if s := p.String(); !slices.Contains(canonical, s) {
			patterns = append(patterns, p)
			canonical = append(canonical, s)
		}
	}
	for _, o := range h.Origins {
		p, err := parseOriginPattern(o)
		if err != nil {
			h.problems = append(h.problems, err)
			canonical = append(canonical, o)
			continue
		}
		add(p)
	}
	var derived []originPattern
	if h.OriginsFromEnv != nil {
		h.problems = append(h.problems, h.OriginsFromEnv.checkNames()...)
		var err error
		if derived, err = h.OriginsFromEnv.derive(h.Environment); err != nil {
			h.problems = append(h.problems, err)
		}
		for _, p := range derived {
			add(p)
		}
	}
	h.source = allowedSetSource(len(h.Origins) > 0, h.OriginsFromEnv, h.AnyLoopbackPort, h.Environment)
	h.Origins = canonical
	h.patterns = patterns
	h.origins = newOriginSet(patterns)
	h.origins.anyLoopbackPort = h.AnyLoopbackPort

	if h.AllowedMethods == nil {
		h.AllowedMethods = slices.Clone(defaultMethods)
	}
	h.methods = nil
	for i, m := range h.AllowedMethods {
		if u := strings.ToUpper(m); isFetchNormalisedMethod(u) {
			m = u
			h.AllowedMethods[i] = u
		}
		if err := checkToken("allowed_methods", m, `"allowed_methods GET POST PUT"`); err != nil {
			h.problems = append(h.problems, err)
		} else if !slices.Contains(h.methods, m) {
			h.methods = append(h.methods, m)
		}
	}

	if h.AllowedHeaders == nil {
		h.AllowedHeaders = slices.Clone(defaultHeaders)
	}
	h.headers = nil
	for _, name := range h.AllowedHeaders {
		if err := checkToken("allowed_headers", name, `"allowed_headers Content-Type X-CSRFToken"`); err != nil {
			h.problems = append(h.problems, err)
		} else if !slices.ContainsFunc(h.headers, func(s string) bool { return strings.EqualFold(s, name) }) {
			h.headers = append(h.headers, name)
		}
	}

	h.maxRequestHeaders = maxRequestHeadersLen(h.headers)

	h.varyPreflight = newVary("Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers")
	if h.AllowPrivateNetwork {
		h.varyPreflight = newVary("Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers",
			"Access-Control-Request-Private-Network")
	}

	h.engineIOPath = h.EngineIOPath
	if h.engineIOPath == "" {
		h.engineIOPath = defaultEngineIOPath
	} else if !strings.HasPrefix(h.engineIOPath, "/") || !strings.HasSuffix(h.engineIOPath, "/") {
		h.problems = append(h.problems, fmt.Errorf(`engineio_path %q must start and end with "/", as in "engineio_path /socket.io/"`, h.engineIOPath))
	}

	h.clientPath = h.ClientPath
	if h.clientPath == "" {
		h.clientPath = defaultClientPath
	} else if !strings.HasPrefix(h.clientPath, "/") || !strings.HasSuffix(h.clientPath, "/") || h.clientPath == "/" {
		h.problems = append(h.problems, fmt.Errorf(`client_path %q must be a prefix that starts and ends with "/", as in "client_path %s"`, h.clientPath, defaultClientPath))
	} else if strings.HasPrefix(h.clientPath, h.engineIOPath) || strings.HasPrefix(h.engineIOPath, h.clientPath) {
		h.problems = append(h.problems, fmt.Errorf(`client_path %q overlaps engineio_path %q; give the client its own prefix, as in "client_path %s"`, h.clientPath, h.engineIOPath, defaultClientPath))
	}
	h.noteGuard(ctx)
	h.diagnose = nil
	d := newDiagnostics(h, patterns, derived)
	if h.Diagnostics == nil && (h.Environment == development || h.Environment == staging) || h.Diagnostics != nil && *h.Diagnostics {
		h.diagnose = d
	}
	live.Store(h, OriginSet{Environment: h.Environment, Credentials: h.Credentials, Sources: d.sources})

	exposed := []string{"Retry-After"}
	for _, name := range h.ExposeHeaders {
		if err := checkToken("expose_headers", name, `"expose_headers X-Request-Id"`); err != nil {
			h.problems = append(h.problems, err)
		} else if !slices.ContainsFunc(exposed, func(s string) bool { return strings.EqualFold(s, name) }) {
			exposed = append(exposed, name)
		}
	}
	h.exposeValue = []string{strings.Join(exposed, ", ")}

	h.maxAgeValue = nil
	if secs := int64(time.Duration(h.MaxAge) / time.Second); secs > 0 {
		h.maxAgeValue = []string{strconv.FormatInt(secs, 10)}
	}

	if c := h.logger.Check(zap.InfoLevel, "edge_cors configured"); c != nil {
		c.Write(zap.String("environment", h.Environment),
			zap.Strings("origins", h.Origins),
			zap.Bool("any_loopback_port", h.AnyLoopbackPort),
			zap.Bool("credentials", h.Credentials),
			zap.Strings("allowed_methods", h.methods),
			zap.Strings("allowed_headers", h.headers),
			zap.Bool("websocket_origin_guard", h.guardEnabled),
			zap.Bool("require_origin", h.RequireOrigin),
			zap.String("engineio_path", h.engineIOPath),
			zap.String("client_path", h.clientPath),
			zap.Bool("diagnostics", h.diagnose != nil),
			zap.Bool("allow_private_network", h.AllowPrivateNetwork))
	}
	return nil
}

// Validate reports every problem with the configuration, each saying
// what to write instead.
func (h *Handler) Validate() error {
	errs := slices.Clone(h.problems)
	if len(h.Origins) == 0 && !h.AnyLoopbackPort {
		hint := ""
		if h.OriginsFromEnv != nil && h.Environment == production {
			hint = " (origins_from_env derived none: in production a loopback or wildcard bind gives no origin, so name a public URL variable)"
		}
		errs = append(errs, fmt.Errorf(`no origins%s; list the origins your pages are served from, as in "origins https://app.example.com"`, hint))
	}
	if h.origins.any {
		if h.Credentials {
			errs = append(errs, fmt.Errorf(`origin "*" with credentials would let every site act with your users' cookies; list the origins instead, or drop credentials`))
		}
		if len(h.Origins) > 1 {
			errs = append(errs, fmt.Errorf(`origin "*" already allows every origin; remove the other entries or remove "*"`))
		}
	}
	if err := checkEnvironment(h.Environment, h.envSource); err != nil {
		errs = append(errs, err)
	}
	if h.AnyLoopbackPort && h.Environment != development {
		errs = append(errs, fmt.Errorf(`any_loopback_port is for environment development only (here %q); list the loopback origins you use, or set environment development`, h.Environment))
	}
	if h.Environment == production {
		for _, p := range h.patterns {
			if err := checkProductionOrigin(p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	switch d := time.Duration(h.MaxAge); {
	case d < 0:
		errs = append(errs, fmt.Errorf(`max_age %s is negative; write a duration from 1s to 24h, or leave it out`, d))
	case d > maxMaxAge:
		errs = append(errs, fmt.Errorf(`max_age %s is longer than browsers honour; write at most 24h (Chromium caps it at 2h)`, d))
	case d > 0 && d < time.Second:
		errs = append(errs, fmt.Errorf(`max_age %s is shorter than the header's unit of one second; write at least 1s`, d))
	}
	for i, err := range errs {
		errs[i] = fmt.Errorf("edge_cors: %w", err)
	}
	return errors.Join(errs...)
}

// allowedSetSource says, for security events, where the allowed
// origins came from: the explicit list, the Flask app's environment,
// the development profile's loopback ports, and the stage that shaped
// them.
func allowedSetSource(explicit bool, fromEnv *OriginsFromEnv, anyLoopbackPort bool, env string) string {
	var parts []string
	if explicit {
		parts = append(parts, "origins (explicit list)")
	}
	if fromEnv != nil {
		hostVar, portVar := fromEnv.HostVar, fromEnv.PortVar
		if hostVar == "" {
			hostVar = defaultHostVar
		}
		if portVar == "" {
			portVar = defaultPortVar
		}
		vars := hostVar + ", " + portVar
		if fromEnv.PublicURLVar != "" {
			vars += ", " + fromEnv.PublicURLVar
		}
		parts = append(parts, "origins_from_env ("+vars+")")
	}
	if anyLoopbackPort {
		parts = append(parts, "any_loopback_port (development profile)")
	}
	s := strings.Join(parts, " + ")
	if s == "" {
		s = "no origins"
	}
	if env != "" {
		s += "; environment " + env
	}
	return s
}

func checkToken(directive, s, example string) error {
	if s == "*" {
		return fmt.Errorf(`%s "*" is not supported; list the names, as in %s`, directive, example)
	}
	if !httpguts.ValidHeaderFieldName(s) {
		return fmt.Errorf(`%s %q is not an HTTP token; write names as in %s`, directive, s, example)
	}
	return nil
}

// isFetchNormalisedMethod reports whether fetch uppercases method m
// (given in uppercase) before sending it.
func isFetchNormalisedMethod(m string) bool {
	switch m {
	case "DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT":
		return true
	}
	return false
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
