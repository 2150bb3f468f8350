// Package socketioproxy is the socketio_proxy HTTP handler: a proxy that
// speaks Engine.IO v4 and Socket.IO v5 well enough to route, check and
// relay the traffic of Flask-SocketIO applications.
package socketioproxy

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/gorilla/websocket"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/flaskedge/flaskedge/internal/engineio"
	"github.com/flaskedge/flaskedge/internal/security"
	"github.com/flaskedge/flaskedge/internal/sticky"
	"github.com/flaskedge/flaskedge/internal/upstreamtls"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler proxies the Engine.IO traffic of a Flask-SocketIO application,
// both long-polling (GET and POST) and WebSocket, to a pool of workers.
//
// A request is Engine.IO traffic when its path starts with Path. Such a
// request is checked before anything reaches a worker: its query must be
// an Engine.IO v4 query that python-engineio cannot read differently from
// the edge (see engineio.ParseQuery), a polling body must fit in
// MaxPayload, and a WebSocket upgrade must be a real one. A refused
// request gets the Engine.IO error reply the client library understands
// and a log line saying why. Every Socket.IO packet a client sends, in a
// polling body or a WebSocket message, is read as python-socketio will
// read it (see package socketio): one that python drops as malformed, or
// could read another way than the edge, is refused (400 on polling, a
// 1008 close on WebSocket), logged as a security event and not
// forwarded. Every other request goes to the next handler
// untouched, so socketio_proxy can stand in front of a reverse_proxy that
// serves the rest of the application.
//
// Sessions are sticky without cookies, client addresses or shared state:
// a new session goes to a healthy worker chosen by LBPolicy, and the sid
// in the worker's open packet is sealed with a reference to that worker
// (see package sticky). Every later request of the session, on either
// transport and through any edge sharing StickySecret, goes to the same
// worker with the worker's own sid; a sid the edge did not seal, or whose
// worker is gone or unhealthy, is answered at once with the Engine.IO
// error "Session ID unknown", on which socket.io-client opens a new
// session on a healthy worker.
//
// WebSocket messages are relayed one frame at a time, never buffered
// whole, and permessage-deflate is not negotiated on either side.
type Handler struct {
	// Upstreams are the network addresses of the Flask-SocketIO workers,
	// as host:port, http://host:port or https://host:port. Without a
	// scheme, a worker is reached over TLS when TLS is set, in clear
	// otherwise; an https:// worker is reached over TLS (with the
	// system's roots unless TLS says otherwise). Plain and TLS workers
	// are never mixed: http:// beside https://, or beside TLS settings,
	// is an error. Placeholders such as {env.WORKER} are replaced once,
	// when the config is loaded.
	Upstreams []string `json:"upstreams,omitempty"`

	// TLS, when set, is how the edge reaches every worker over TLS:
	// polling requests, the WebSocket (wss), and the health checks. It is
	// reverse_proxy's TLS config with its meaning (ca, server_name,
	// client certificates for mTLS, insecure_skip_verify, which is logged
	// as an error at every load); except_ports is refused. Written in the
	// Caddyfile as reverse_proxy's transport: `transport http {
	// tls_trust_pool file ca.pem }`. Default: none, plain http.
	TLS *reverseproxy.TLSConfig `json:"tls,omitempty"`

	// Path is the Engine.IO endpoint, the path prefix that
	// Flask-SocketIO's `path` option names. Default: "/socket.io/".
	Path string `json:"path,omitempty"`

	// LBPolicy chooses the worker of a new session: "least_sessions"
	// (default), the healthy worker with the fewest live sessions on this
	// edge, or "round_robin".
	LBPolicy string `json:"lb_policy,omitempty"`

	// StickySecret keys the seal that binds a sid to its worker. Edges
	// that serve the same clients must share it; at least 16 characters.
	// Placeholders such as {env.EDGE_STICKY_SECRET} are replaced when the
	// config is loaded. Default: a random key made once per process,
	// which keeps sessions bound across config reloads of one edge but
	// not across edges or restarts.
	StickySecret string `json:"sticky_secret,omitempty"`

	// HealthChecks are active checks of the workers. Without a URI, a
	// worker leaves rotation only through passive failure detection.
	HealthChecks *HealthChecks `json:"health_checks,omitempty"`

	// FailDuration is how long a worker that could not be reached stays
	// out of rotation (passive failure detection). Default: 10s.
	FailDuration caddy.Duration `json:"fail_duration,omitempty"`

	// Namespaces are the rules for connecting to Socket.IO namespaces,
	// by namespace ("/admin"); the rule under "*" applies to namespaces
	// not listed. Without rules every namespace is public. The edge reads
	// every Socket.IO CONNECT a client sends, on both transports, exactly
	// as python-socketio will read it (see package socketio), and answers
	// a denied one with a CONNECT_ERROR for that namespace, which
	// socket.io-client reports as connect_error and does not retry; the
	// session's other namespaces are not disturbed. The identity comes
	// from the {http.auth.user.id} and {http.auth.user.role} placeholders
	// that flask_session sets.
	Namespaces map[string]*NamespaceRule `json:"namespaces,omitempty"`

	// RateLimits bound how fast a client may open sessions and send
	// messages. Default: no limits.
	RateLimits *RateLimits `json:"rate_limits,omitempty"`

	// MaxPayload is the largest polling request body and the largest
	// WebSocket message, in bytes, the edge relays from a client.
	// Default: 1000000, python-engineio's max_http_buffer_size.
	MaxPayload int64 `json:"max_payload,omitempty"`

	// MaxRequestsPerIP bounds the Engine.IO requests one client address
	// may have in flight at once: long-polls, POSTs, and upgrades not
	// yet relaying (a relayed WebSocket no longer counts). Over it, a
	// request gets 429. Each session may in any case have only one GET
	// and one POST in flight through an edge, as Engine.IO allows.
	// Default: 4096, room for thousands of browsers behind one NAT.
	MaxRequestsPerIP int `json:"max_requests_per_ip,omitempty"`

	// BodyTimeout bounds how long a polling POST body may take to
	// arrive, so that a client trickling it holds no connection long.
	// Default: 10s.
	BodyTimeout caddy.Duration `json:"body_timeout,omitempty"`

	// DrainPeriod spreads the closing of the edge's WebSocket sessions
	// when the process exits: each gets the Engine.IO close packet and a
	// 1001 close at a moment of its own, evenly over this period in
	// random order, and works normally until then, so that its client's
	// reconnection reaches the remaining edges as part of a stream
	// rather than a stampede. Waiting long-polls are answered with the
	// close packet at once (the server no longer accepts connections).
	// The process exits once every session has closed, at most
	// DrainPeriod plus 6 s after it began to. Caddy's own grace_period
	// does not bound it: relayed WebSockets are not HTTP requests to the
	// server. Default: 0, every session closed at once.
	DrainPeriod caddy.Duration `json:"drain_period,omitempty"`

	// DynamicUpstreamsRaw, instead of Upstreams, takes the workers from a
	// dynamic upstream source of reverse_proxy's
	// (http.reverse_proxy.upstreams: a, srv, multi, or this plugin's
	// file), asked again as the source says, without a reload. New
	// sessions go only to workers of its latest answer; a sealed sid
	// stays valid while its worker is in the answer; the sessions of a
	// worker that left it are closed (WebSocket: the Engine.IO close
	// packet and a 1001; polling: "Session ID unknown") and their clients
	// reconnect at once to one that is there.
	DynamicUpstreamsRaw json.RawMessage `json:"dynamic_upstreams,omitempty" caddy:"namespace=http.reverse_proxy.upstreams inline_key=source"`

	// DrainTimeout is how long the live sessions of a worker being
	// drained for a deploy (see the admin API and
	// HealthChecks.DrainStatus) may go on: then the edge closes them as
	// it does when it exits, and their clients reconnect at once, to
	// another worker. Default: 0, they go on until they end.
	DrainTimeout caddy.Duration `json:"drain_timeout,omitempty"`

	// Recover turns on Socket.IO connection state recovery (the
	// protocol socket.io-client 4.x speaks with the Node server's
	// connectionStateRecovery): a client that loses its connection and
	// comes back through this edge within the window gets its session
	// back, with every event it missed, and the worker never sees it
	// leave. The edge then speaks Engine.IO to the client itself and
	// holds one WebSocket to the worker per session. See Recover.
	Recover *Recover `json:"recover,omitempty"`

	// DialTimeout bounds how long connecting to a worker may take, and
	// how long it may take to answer a handshake (polling or WebSocket):
	// a worker that takes longer is taken out of rotation for
	// FailDuration, and the handshake goes to another.
	// Default: 5s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`

	pool       *pool
	registry   *registry
	policy     *policy      // this config's
	slot       *policySlot  // the policy live WebSockets follow
	root       caddy.Module // this config's, in slot
	buckets    *buckets     // nil without rate limits
	logger     *zap.Logger
	security   *zap.Logger
	healthLoop *healthLoop // nil without active health checks
	tlsConfig  *tls.Config // to every worker; nil for plain http
	sourceLoop *healthLoop // nil without a dynamic source
	pids       *pidSealer  // with Recover
	problems   []error     // found in Provision, reported by Validate
	keepers    *keepers    // serve the polling connections it parked
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
	DefaultPath           = "/socket.io/"
	DefaultMaxPayload     = 1_000_000
	DefaultDialTimeout    = 5 * time.Second
	DefaultBodyTimeout    = 10 * time.Second
	DefaultFailDuration   = 10 * time.Second
	DefaultHealthInterval = 5 * time.Second
	DefaultHealthTimeout  = 2 * time.Second
	DefaultMaxRequests    = 4096
	DefaultDrainStatus    = http.StatusGone
	minStickySecret       = 16
	maxMaxPayload         = 1 << 40
)

// processKey is the sticky key of edges configured without a secret: made
// once per process, so it outlives config reloads.
var processKey = sync.OnceValue(func() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
})

// Provision sets defaults and prepares the worker pool. A setting it
// cannot use is recorded, not returned, so that Validate reports every
// problem of the config at once.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.security = security.Logger()
	h.keepers = new(keepers)
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("registering metrics: %w", err)
	}
	if h.Path == "" {
		h.Path = DefaultPath
	}
	if h.LBPolicy == "" {
		h.LBPolicy = PolicyLeastSessions
	}
	if h.MaxPayload == 0 {
		h.MaxPayload = DefaultMaxPayload
	}
	if h.DialTimeout == 0 {
		h.DialTimeout = caddy.Duration(DefaultDialTimeout)
	}
	if h.MaxRequestsPerIP == 0 {
		h.MaxRequestsPerIP = DefaultMaxRequests
	}
	if h.BodyTimeout == 0 {
		h.BodyTimeout = caddy.Duration(DefaultBodyTimeout)
	}
	if h.FailDuration == 0 {
		h.FailDuration = caddy.Duration(DefaultFailDuration)
	}
	if hc := h.HealthChecks; hc != nil {
		if hc.Interval == 0 {
			hc.Interval = caddy.Duration(DefaultHealthInterval)
		}
		if hc.Timeout == 0 {
			hc.Timeout = caddy.Duration(DefaultHealthTimeout)
		}
		if hc.Passes == 0 {
			hc.Passes = 1
		}
		if hc.Fails == 0 {
			hc.Fails = 1
		}
		if hc.DrainStatus == 0 {
			hc.DrainStatus = DefaultDrainStatus
		}
	}
	if rl := h.RateLimits; rl != nil && rl.MaxTracked == 0 {
		rl.MaxTracked = defaultMaxTracked
	}

	reloadHint.Do(func() { hintMigrateReq(h.logger) })
	if err := h.crossCheck(ctx); err != nil {
		h.problems = append(h.problems, err)
	}

	repl := caddy.NewReplacer()
	key := processKey()
	if h.StickySecret != "" {
		// The secret is never written into a message, only its length.
		secret := repl.ReplaceKnown(h.StickySecret, "")
		if len(secret) < minStickySecret {
			h.problems = append(h.problems, fmt.Errorf("sticky_secret is %d characters once its placeholders are replaced; use at least %d random characters shared by every edge (e.g. {env.EDGE_STICKY_SECRET})",
				len(secret), minStickySecret))
		}
		key = []byte(secret)
	}
	h.pool = &pool{codec: sticky.New(key), policy: h.LBPolicy}
	if h.Recover != nil {
		h.Recover.provision()
		h.pids = newPIDSealer(key)
	}
	set := &workerSet{byTag: make(map[sticky.Tag]*upstream)}
	var addrs []string
	addrs, h.tlsConfig = h.provisionUpstreams(ctx, repl)
	for _, addr := range addrs {
		tag := h.pool.codec.Tag(addr)
		if other, dup := set.byTag[tag]; dup {
			if other.addr == addr {
				h.problems = append(h.problems, fmt.Errorf("upstream %s is listed twice", addr))
			} else {
				h.problems = append(h.problems, fmt.Errorf("upstreams %s and %s have the same sticky tag; choose another sticky_secret", other.addr, addr))
			}
			continue
		}
		u := h.newUpstream(addr, tag)
		set.upstreams = append(set.upstreams, u)
		set.byTag[tag] = u
	}
	h.pool.set.Store(set)
	if h.DynamicUpstreamsRaw != nil {
		if len(h.Upstreams) > 0 {
			h.problems = append(h.problems, errors.New("workers come from `to` or from `dynamic`, not both"))
		}
		key := sourceKey(h.DynamicUpstreamsRaw) // LoadModule clears it
		mod, err := ctx.LoadModule(h, "DynamicUpstreamsRaw")
		if err != nil {
			return fmt.Errorf("loading the dynamic upstream source: %w", err)
		}
		h.pool.dyn = &dynamicWorkers{source: mod.(reverseproxy.UpstreamSource), key: key, build: h.newUpstream, logger: h.logger}
	}
	if len(h.problems) > 0 {
		// Nothing more is built: Validate reports, and Caddy cleans up.
		return nil
	}
	h.registry = loadRegistry()
	h.policy = h.newPolicy()
	h.root = configRoot(ctx)
	h.slot = loadPolicySlot(h.Path, h.root, h.policy)
	if rl := h.RateLimits; rl != nil && rl.valid() {
		var err error
		if h.buckets, err = loadBuckets(rl); err != nil {
			return err
		}
	}

	if h.HealthChecks == nil || h.HealthChecks.URI == "" {
		// Without active checks this config does not judge health; a
		// verdict an earlier config's checks left must not linger.
		for _, u := range h.pool.workers() {
			u.checkedHealthy.Store(true)
		}
	} else {
		h.healthLoop = h.startHealthChecks(ctx)
	}
	if h.pool.dyn != nil {
		h.sourceLoop = h.startSourceRefresh(ctx)
	}
	return nil
}

// provisionUpstreams reads the workers' addresses and decides whether
// they are reached over TLS, recording what is wrong: a list must be all
// plain or all TLS. The TLS config is nil for plain workers.
func (h *Handler) provisionUpstreams(ctx caddy.Context, repl *caddy.Replacer) ([]string, *tls.Config) {
	var addrs, plain, secure []string
	for _, raw := range h.Upstreams {
		addr, scheme, err := parseUpstream(repl.ReplaceKnown(raw, ""))
		if err != nil {
			h.problems = append(h.problems, err)
			continue
		}
		addrs = append(addrs, addr)
		switch scheme {
		case "http":
			plain = append(plain, raw)
		case "https":
			secure = append(secure, raw)
		}
	}
	switch {
	case len(plain) > 0 && len(secure) > 0:
		h.problems = append(h.problems, fmt.Errorf("workers %s are plain http and %s are https; plain and TLS workers are not mixed: give every worker https:// (or TLS settings), or none",
			strings.Join(plain, " "), strings.Join(secure, " ")))
		return addrs, nil
	case len(plain) > 0 && h.TLS != nil:
		h.problems = append(h.problems, fmt.Errorf("workers %s are plain http but the transport has TLS settings; write them as https://host:port (or host:port), or remove the TLS settings",
			strings.Join(plain, " ")))
		return addrs, nil
	case len(secure) == 0 && h.TLS == nil:
		return addrs, nil
	}
	cfg, err := upstreamtls.ClientConfig(ctx, h.TLS, h.logger, "socketio_proxy")
	if err != nil {
		h.problems = append(h.problems, err)
	}
	return addrs, cfg
}

// Validate checks the configuration and reports every problem at once.
func (h *Handler) Validate() error {
	problems := slices.Clone(h.problems)
	add := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }
	if len(h.Upstreams) == 0 && (h.pool == nil || h.pool.dyn == nil) {
		add("no upstream; name the Flask-SocketIO workers with `to 127.0.0.1:5001 127.0.0.1:5002`, or give a source with `dynamic`")
	}
	if !strings.HasPrefix(h.Path, "/") || !strings.HasSuffix(h.Path, "/") {
		add("path %q must start and end with a slash, e.g. %q", h.Path, DefaultPath)
	}
	if h.LBPolicy != PolicyLeastSessions && h.LBPolicy != PolicyRoundRobin {
		add("lb_policy %q is unknown; use %s or %s", h.LBPolicy, PolicyLeastSessions, PolicyRoundRobin)
	}
	for name, d := range map[string]caddy.Duration{"drain_period": h.DrainPeriod, "drain_timeout": h.DrainTimeout, "dial_timeout": h.DialTimeout,
		"body_timeout": h.BodyTimeout, "fail_duration": h.FailDuration} {
		if d < 0 {
			add("%s %v is negative", name, time.Duration(d))
		}
	}
	if h.MaxRequestsPerIP < 0 {
		add("max_requests_per_ip %d is negative", h.MaxRequestsPerIP)
	}
	if h.MaxPayload < 0 || h.MaxPayload > maxMaxPayload {
		add("max_payload %d is not between 1 and 1TB", h.MaxPayload)
	}
	if hc := h.HealthChecks; hc != nil {
		if hc.URI != "" && !strings.HasPrefix(hc.URI, "/") {
			add("health_uri %q must be a path such as /healthz", hc.URI)
		}
		if hc.Interval < 0 || hc.Timeout < 0 {
			add("health_interval and health_timeout must be positive")
		}
		if hc.Passes < 0 || hc.Fails < 0 {
			add("health_passes and health_fails must be positive")
		}
		if e := hc.ExpectStatus; e != 0 && (e < 1 || e > 5) && (e < 100 || e > 599) {
			add("health_status %d is neither a status code (200) nor a class (2 for any 2xx)", e)
		}
		if ds := hc.DrainStatus; ds != -1 && (ds < 100 || ds > 599 || statusMatches(ds, hc.ExpectStatus)) {
			add("health_drain_status %d must be a status code other than the healthy one (or -1 for none)", ds)
		}
	}
	for _, ns := range slices.Sorted(maps.Keys(h.Namespaces)) {
		if rule := h.Namespaces[ns]; rule == nil {
			add("namespace %s has no rule", ns)
		} else if err := rule.validate(ns); err != nil {
			problems = append(problems, err)
		}
	}
	if rl := h.RateLimits; rl != nil {
		for _, what := range []string{"connect", "messages"} {
			r := rl.Connect
			if what == "messages" {
				r = rl.Messages
			}
			if r != nil {
				if err := r.validate(what); err != nil {
					problems = append(problems, err)
				}
			}
		}
	}
	if h.Recover != nil {
		problems = append(problems, h.Recover.validate()...)
	}
	if len(problems) == 0 {
		return nil
	}
	msgs := make([]string, len(problems))
	for i, p := range problems {
		msgs[i] = strings.TrimPrefix(p.Error(), "socketio_proxy: ")
	}
	return errors.New("socketio_proxy: " + strings.Join(msgs, "; "))
}

// Cleanup stops the health checks and releases idle connections. Relayed
// WebSockets are not closed: they belong to their clients, not to a config.
func (h *Handler) Cleanup() error {
	if h.keepers != nil {
		h.keepers.stop()
	}
	h.healthLoop.end()
	h.sourceLoop.end()
	if h.pool != nil {
		h.pool.close()
	}
	if h.registry != nil {
		_, _ = registries.Delete(registryKey)
	}
	if h.slot != nil {
		h.slot.release(h.Path, h.root, h.policy)
	}
	if h.buckets != nil {
		_, _ = bucketPools.Delete(h.RateLimits.bucketsKey())
	}
	return nil
}

// ServeHTTP proxies Engine.IO requests and passes every other one on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if !strings.HasPrefix(r.URL.Path, h.Path) {
		if strings.HasPrefix(engineio.WorkerPath(r.URL.EscapedPath()), h.Path) {
			// "//socket.io/": the worker reduces the slashes and serves
			// it as Engine.IO; the edge would have passed it on unchecked.
			h.refuse(w, h.newCall(r), engineio.CodeBadRequest, security.ReasonMalformed, "path reaches the Engine.IO path only once its leading slashes are reduced")
			return nil
		}
		return next.ServeHTTP(w, r)
	}
	c := h.newCall(r)
	defer c.end()
	if !h.admit(w, c) || !h.route(w, c) {
		return nil
	}
	if h.Recover != nil {
		h.serveBridged(w, c)
		return nil
	}
	if c.q.Transport == engineio.WebSocket {
		h.serveWebSocket(w, c)
		return nil
	}
	if !h.pollSession(w, c) {
		return nil
	}
	if c.keep {
		// Nothing of the call is left that the client's next request
		// on this connection could meet: it may be parked.
		c.end()
		if k := h.keeperFor(r); k != nil {
			k.park(w, r)
		}
	}
	return nil
}

// pollSession serves a polling request in its session's place: one GET
// and one POST at a time. It reports false when the request was refused
// for it.
func (h *Handler) pollSession(w http.ResponseWriter, c *call) bool {
	if c.sid != "" {
		ok, done := h.registry.poll(c.r.Context(), c.sid, c.up.upstreamState, c.r.Method == http.MethodPost, c.now)
		if !ok {
			h.refuse(w, c, engineio.CodeBadRequest, security.ReasonMalformed, "a second "+c.r.Method+" of the session while one is in flight")
			return false
		}
		c.pollDone = done
		defer func() {
			if c.waiting == nil {
				done() // else the waiting poll frees it once answered
			}
		}()
	}
	h.servePolling(w, c)
	return true
}

// admit checks what a request is before anything is routed: a path and
// query the worker cannot read differently from the edge, a method and
// transport an Engine.IO client sends, and room for it among its
// address's requests in flight (until the call ends).
func (h *Handler) admit(w http.ResponseWriter, c *call) bool {
	r := c.r
	// The worker reads the path as the client escaped it and decodes it
	// itself: a '?' or '#' that only decoding reveals would start a
	// query of its own ahead of the one the edge checks.
	if strings.ContainsAny(r.URL.Path, "?#") {
		h.refuse(w, c, engineio.CodeBadRequest, security.ReasonMalformed, "path holds '?' or '#' once decoded")
		return false
	}
	q, err := engineio.ParseQuery(r.URL.RawQuery)
	if err != nil {
		var qe *engineio.QueryError
		if !errors.As(err, &qe) {
			qe = &engineio.QueryError{Code: engineio.CodeUnsupportedProtocolVersion, Reason: "no EIO parameter"}
		}
		h.refuse(w, c, qe.Code, security.ReasonMalformed, qe.Reason)
		return false
	}
	c.q = q
	switch {
	case q.Transport == engineio.WebSocket && (r.Method != http.MethodGet || !websocket.IsWebSocketUpgrade(r)):
		h.refuse(w, c, engineio.CodeBadRequest, security.ReasonMalformed, "transport=websocket without a WebSocket upgrade")
		return false
	case q.Transport == engineio.Polling && r.Method != http.MethodGet && r.Method != http.MethodPost:
		h.refuse(w, c, engineio.CodeBadHandshakeMethod, security.ReasonMalformed, "method "+r.Method+" is not GET or POST")
		return false
	case q.Handshake() && r.Method != http.MethodGet:
		h.refuse(w, c, engineio.CodeBadHandshakeMethod, security.ReasonMalformed, "a handshake must be a GET")
		return false
	}
	ok, done := h.registry.request(c.limitKey, h.MaxRequestsPerIP)
	if !ok {
		h.tooMany(w, c, time.Second, "over "+strconv.Itoa(h.MaxRequestsPerIP)+" Engine.IO requests in flight from this address")
		return false
	}
	c.inFlight = done
	return true
}

// route finds the call's worker: for a handshake, a healthy one picked
// by LBPolicy (taking a seat on it); for a session, the one its sealed
// sid names, if the session is the caller's and its worker serves it.
func (h *Handler) route(w http.ResponseWriter, c *call) bool {
	r := c.r
	if c.q.Handshake() {
		if h.buckets != nil && h.RateLimits.Connect != nil {
			if ok, wait := h.buckets.take("c:"+c.limitKey, h.RateLimits.Connect, 1); !ok {
				h.tooMany(w, c, wait, "new sessions from this address over "+h.RateLimits.Connect.String())
				return false
			}
		}
		h.pool.refresh(r)
		if c.up = h.pool.pick(c.now); c.up == nil {
			h.noWorker(w, c)
			return false
		}
		c.seat = takeSeat(c.up.upstreamState)
		c.owner = sticky.Owner{User: c.id.UserID, Origin: c.client.Origin}
		c.uri = r.URL.EscapedPath() + "?" + r.URL.RawQuery
		return true
	}
	h.pool.refresh(r)
	sealed, sealedHere := h.pool.codec.Open(c.q.SID)
	ok := sealedHere
	if ok {
		c.up, ok = h.pool.byTag(sealed.Tag)
	}
	origin := c.client.Origin
	switch {
	case !sealedHere:
		h.refuse(w, c, engineio.CodeSessionIDUnknown, security.ReasonSID, "sid not sealed by this edge's sticky_secret")
		return false
	case !ok:
		// Its worker left the config or the dynamic source's answer:
		// the client opens a new session on one that is there.
		h.registry.closed(c.q.SID)
		h.refuse(w, c, engineio.CodeSessionIDUnknown, security.ReasonUpstream, "the session's worker is no longer one of the workers")
		return false
	case !h.pool.codec.OwnedBy(sealed, c.id.UserID):
		// Another user's cookie (or none, or a new login) on this
		// session: it is not theirs. The client that opened it is not
		// disturbed; a client whose login changed opens a new session
		// on this answer.
		h.refuseIdentity(w, c)
		return false
	case origin != "" && !h.pool.codec.OpenedFrom(sealed, origin) && !h.pool.codec.OpenedFrom(sealed, ""):
		h.refuseOrigin(w, c)
		return false
	case h.registry.letGo(c.q.SID, c.now):
		// The worker stays up: end the session there too, as the
		// client will not come back to it.
		c.sid, c.workerSID = c.q.SID, sealed.WorkerSID
		c.uri = r.URL.EscapedPath() + "?" + engineio.ReplaceSID(r.URL.RawQuery, c.workerSID)
		h.tellWorker(c, []byte{byte(engineio.Close)})
		h.registry.closed(c.q.SID)
		h.refuse(w, c, engineio.CodeSessionIDUnknown, security.ReasonUpstream, "the session's worker "+c.up.addr+" is draining for a deploy")
		return false
	case !c.up.serving():
		h.registry.closed(c.q.SID)
		h.refuse(w, c, engineio.CodeSessionIDUnknown, security.ReasonUpstream, "the session's worker "+c.up.addr+" is unhealthy")
		return false
	}
	c.sid = c.q.SID
	c.workerSID = sealed.WorkerSID
	c.uri = r.URL.EscapedPath() + "?" + engineio.ReplaceSID(r.URL.RawQuery, c.workerSID)
	return true
}

// refuse answers with an Engine.IO error and logs why; reason is one of
// the refusal kinds the metrics count (malformed, sid, size, upstream).
func (h *Handler) refuse(w http.ResponseWriter, c *call, code engineio.ErrorCode, reason, detail string) {
	security.Refused(reason)
	if reason == security.ReasonSID {
		security.LogClient(h.security, "socketio_proxy", security.SIDTampered, detail, c.client, security.Fields{})
	}
	if ce := h.logger.Check(zapcore.InfoLevel, "refused Engine.IO request"); ce != nil {
		ce.Write(
			zap.String("reason", reason),
			zap.String("detail", detail),
			zap.String("remote_ip", c.client.IP),
			zap.String("method", c.r.Method),
			zap.String("uri", c.r.URL.Path),
		)
	}
	engineio.WriteError(w, code)
}

// refuseIdentity answers a request of a session from another user than
// the one who opened it.
func (h *Handler) refuseIdentity(w http.ResponseWriter, c *call) {
	security.Refused(security.ReasonIdentity)
	security.LogClient(h.security, "socketio_proxy", security.IdentityMismatch,
		"the session was opened by another user (or before a login or logout)", c.client, security.Fields{UserID: c.id.UserID})
	engineio.WriteError(w, engineio.CodeSessionIDUnknown)
}

// refuseOrigin answers a request of a session from another origin than
// the one that opened it.
func (h *Handler) refuseOrigin(w http.ResponseWriter, c *call) {
	security.Refused(security.ReasonOrigin)
	security.LogClient(h.security, "socketio_proxy", security.OriginRefused,
		"the session was opened from another origin", c.client, security.Fields{})
	engineio.WriteError(w, engineio.CodeForbidden)
}

// tooMany answers a client over a rate limit with 429 and Retry-After.
func (h *Handler) tooMany(w http.ResponseWriter, c *call, wait time.Duration, detail string) {
	security.Refused(security.ReasonRate)
	security.LogClient(h.security, "socketio_proxy", security.RateLimited, detail, c.client, security.Fields{UserID: c.id.UserID})
	w.Header().Set("Retry-After", retryAfterSeconds(wait))
	writeJSON(w, http.StatusTooManyRequests, tooManyBody(wait))
}

func tooManyBody(wait time.Duration) string {
	return `{"code":3,"message":"Too many requests; retry after ` + retryAfterSeconds(wait) + ` s"}`
}

// noWorker answers a handshake when no worker is healthy, with a 503 the
// client retries with its backoff.
func (h *Handler) noWorker(w http.ResponseWriter, c *call) {
	security.Refused(security.ReasonUpstream)
	if ce := h.logger.Check(zapcore.WarnLevel, "refused Engine.IO handshake"); ce != nil {
		ce.Write(zap.String("reason", "upstream"), zap.String("detail", "no healthy Socket.IO worker"),
			zap.String("remote_ip", c.client.IP))
	}
	writeJSON(w, http.StatusServiceUnavailable, `{"code":3,"message":"No Socket.IO worker is available"}`)
}

// upstreamFailed answers a request whose worker could not be reached and
// takes the worker out of rotation for FailDuration. A request of an
// existing session gets "Session ID unknown", so the client opens a new
// session at once instead of retrying a worker that is gone.
func (h *Handler) upstreamFailed(w http.ResponseWriter, c *call, err error) {
	c.up.markDown(time.Now(), time.Duration(h.FailDuration))
	h.logger.Warn("Socket.IO worker unreachable; out of rotation",
		zap.String("upstream", c.up.addr), zap.Duration("for", time.Duration(h.FailDuration)),
		zap.String("remote_ip", c.client.IP), zap.Error(err))
	if c.sid == "" {
		writeJSON(w, http.StatusBadGateway, `{"code":3,"message":"No Socket.IO worker is reachable"}`)
		return
	}
	h.registry.closed(c.sid)
	engineio.WriteError(w, engineio.CodeSessionIDUnknown)
}

// nextForHandshake takes the worker a handshake could not reach out of
// rotation and moves the handshake, and its seat, to another healthy
// worker: no session exists yet, so nothing is lost. It is false for a
// request of a session, a client that went away, or when no other worker
// is healthy; the caller then answers as before.
func (h *Handler) nextForHandshake(c *call, err error) bool {
	if c.sid != "" || c.r.Context().Err() != nil {
		return false
	}
	now := time.Now()
	c.up.markDown(now, time.Duration(h.FailDuration))
	next := h.pool.pick(now)
	if next == nil {
		return false
	}
	h.logger.Warn("Socket.IO worker unreachable; out of rotation, handshake sent to another",
		zap.String("upstream", c.up.addr), zap.String("to", next.addr), zap.Duration("for", time.Duration(h.FailDuration)),
		zap.String("remote_ip", c.client.IP), zap.Error(err))
	c.seat.free()
	c.up, c.seat = next, takeSeat(next.upstreamState)
	return true
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
