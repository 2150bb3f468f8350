// Package socketioproxy is the socketio_proxy HTTP handler: a proxy that
// speaks Engine.IO v4 and Socket.IO v5 well enough to route, check and
// relay the traffic of Flask-SocketIO applications.
package socketioproxy

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/gorilla/websocket"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/flaskedge/flaskedge/internal/engineio"
	"github.com/flaskedge/flaskedge/internal/identity"
	"github.com/flaskedge/flaskedge/internal/security"
	"github.com/flaskedge/flaskedge/internal/sticky"
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
	// as host:port (an http:// prefix is accepted). Placeholders such as
	// {env.WORKER} are replaced once, when the config is loaded.
	Upstreams []string `json:"upstreams,omitempty"`

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

	// DialTimeout bounds how long connecting to a worker may take.
	// Default: 5s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`

	pool     *pool
	sessions *sessions
	policy   *policy      // this config's
	slot     *policySlot  // the policy live WebSockets follow
	root     caddy.Module // this config's, in slot
	buckets  *buckets     // nil without rate limits
	logger   *zap.Logger
	security *zap.Logger
	workers  *background
}

// background is the handler's own goroutines, the health checks, which
// end with the config.
type background struct {
	stop context.CancelFunc
	wg   sync.WaitGroup
}

func (b *background) run(ctx context.Context, fn func(context.Context)) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		fn(ctx)
	}()
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
	minStickySecret       = 16
)

// processKey is the sticky key of edges configured without a secret: made
// once per process, so it outlives config reloads.
var processKey = sync.OnceValue(func() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
})

// Provision sets defaults and prepares the worker pool.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.security = security.Logger()
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
	}

	reloadHint.Do(func() { hintMigrateReq(h.logger) })

	repl := caddy.NewReplacer()
	key := processKey()
	if h.StickySecret != "" {
		secret := repl.ReplaceKnown(h.StickySecret, "")
		if len(secret) < minStickySecret {
			return fmt.Errorf("socketio_proxy: sticky_secret %q is %d characters after placeholders; use at least %d random characters shared by every edge",
				h.StickySecret, len(secret), minStickySecret)
		}
		key = []byte(secret)
	}
	h.pool = &pool{codec: sticky.New(key), policy: h.LBPolicy, byTag: make(map[sticky.Tag]*upstream)}
	for _, raw := range h.Upstreams {
		addr, err := parseUpstream(repl.ReplaceKnown(raw, ""))
		if err != nil {
			return err
		}
		tag := h.pool.codec.Tag(addr)
		if other, dup := h.pool.byTag[tag]; dup {
			if other.addr == addr {
				return fmt.Errorf("socketio_proxy: upstream %s is listed twice", addr)
			}
			return fmt.Errorf("socketio_proxy: upstreams %s and %s have the same sticky tag; choose another sticky_secret", other.addr, addr)
		}
		u := newUpstream(addr, tag, time.Duration(h.DialTimeout))
		h.pool.upstreams = append(h.pool.upstreams, u)
		h.pool.byTag[tag] = u
	}
	h.sessions = loadRegistry()
	h.policy = h.newPolicy()
	h.root = configRoot(ctx)
	h.slot = loadPolicySlot(h.Path, h.root, h.policy)
	if rl := h.RateLimits; rl != nil {
		if rl.MaxTracked == 0 {
			rl.MaxTracked = defaultMaxTracked
		}
		for what, r := range map[string]*Rate{"connect": rl.Connect, "messages": rl.Messages} {
			if r != nil {
				if err := r.validate(what); err != nil {
					return err
				}
			}
		}
		var err error
		if h.buckets, err = loadBuckets(rl); err != nil {
			return err
		}
	}

	if h.HealthChecks == nil || h.HealthChecks.URI == "" {
		// Without active checks this config does not judge health; a
		// verdict an earlier config's checks left must not linger.
		for _, u := range h.pool.upstreams {
			u.checkedHealthy.Store(true)
		}
	} else {
		bg, stop := context.WithCancel(context.Background())
		h.workers = &background{stop: stop}
		h.workers.run(bg, h.runHealthChecks)
	}
	return nil
}

// Validate checks the configuration.
func (h *Handler) Validate() error {
	switch {
	case len(h.pool.upstreams) == 0:
		return errors.New("socketio_proxy: no upstream; name the Flask-SocketIO workers with `to 127.0.0.1:5001 127.0.0.1:5002`")
	case !strings.HasPrefix(h.Path, "/") || !strings.HasSuffix(h.Path, "/"):
		return fmt.Errorf("socketio_proxy: path %q must start and end with a slash, e.g. %q", h.Path, DefaultPath)
	case h.LBPolicy != PolicyLeastSessions && h.LBPolicy != PolicyRoundRobin:
		return fmt.Errorf("socketio_proxy: lb_policy %q is unknown; use %s or %s", h.LBPolicy, PolicyLeastSessions, PolicyRoundRobin)
	case h.DrainPeriod < 0:
		return fmt.Errorf("socketio_proxy: drain_period %v is negative", time.Duration(h.DrainPeriod))
	case h.MaxRequestsPerIP < 0:
		return fmt.Errorf("socketio_proxy: max_requests_per_ip %d is negative", h.MaxRequestsPerIP)
	case h.MaxPayload < 0:
		return fmt.Errorf("socketio_proxy: max_payload %d is negative", h.MaxPayload)
	case h.HealthChecks != nil && h.HealthChecks.URI != "" && !strings.HasPrefix(h.HealthChecks.URI, "/"):
		return fmt.Errorf("socketio_proxy: health_uri %q must be a path such as /healthz", h.HealthChecks.URI)
	}
	for ns, rule := range h.Namespaces {
		if rule == nil {
			return fmt.Errorf("socketio_proxy: namespace %s has no rule", ns)
		}
		if err := rule.validate(ns); err != nil {
			return err
		}
	}
	return nil
}

// Cleanup stops the health checks and releases idle connections. Relayed
// WebSockets are not closed: they belong to their clients, not to a config.
func (h *Handler) Cleanup() error {
	if h.workers != nil {
		h.workers.stop()
		h.workers.wg.Wait()
	}
	if h.pool != nil {
		for _, u := range h.pool.upstreams {
			u.close()
		}
	}
	if h.sessions != nil {
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
			h.refuse(w, r, engineio.CodeBadRequest, security.ReasonMalformed, "path reaches the Engine.IO path only once its leading slashes are reduced")
			return nil
		}
		return next.ServeHTTP(w, r)
	}
	// The worker reads the path as the client escaped it and decodes it
	// itself: a '?' or '#' that only decoding reveals would start a
	// query of its own ahead of the one the edge checks.
	if strings.ContainsAny(r.URL.Path, "?#") {
		h.refuse(w, r, engineio.CodeBadRequest, security.ReasonMalformed, "path holds '?' or '#' once decoded")
		return nil
	}
	q, err := engineio.ParseQuery(r.URL.RawQuery)
	if err != nil {
		var qe *engineio.QueryError
		if !errors.As(err, &qe) {
			qe = &engineio.QueryError{Code: engineio.CodeUnsupportedProtocolVersion, Reason: "no EIO parameter"}
		}
		h.refuse(w, r, qe.Code, security.ReasonMalformed, qe.Reason)
		return nil
	}
	if !h.methodAllowed(w, r, q) {
		return nil
	}
	ok, done := h.sessions.request(security.ClientIP(r), h.MaxRequestsPerIP)
	if !ok {
		h.tooMany(w, r, time.Second, "over "+strconv.Itoa(h.MaxRequestsPerIP)+" Engine.IO requests in flight from this address")
		return nil
	}
	defer done()

	now := time.Now()
	c := call{id: identity.Of(r), pol: h.policy}
	origin := r.Header.Get("Origin")
	if q.Handshake() {
		if h.buckets != nil && h.RateLimits.Connect != nil {
			if ok, wait := h.buckets.take("c:"+security.ClientIP(r), h.RateLimits.Connect, 1); !ok {
				h.tooMany(w, r, wait, "new sessions from this address over "+h.RateLimits.Connect.String())
				return nil
			}
		}
		if c.up = h.pool.pick(now); c.up == nil {
			h.noWorker(w, r)
			return nil
		}
		c.owner = sticky.Owner{User: c.id.UserID, Origin: origin}
		c.uri = r.URL.EscapedPath() + "?" + r.URL.RawQuery
	} else {
		sealed, ok := h.pool.codec.Open(q.SID)
		if ok {
			c.up, ok = h.pool.byTag[sealed.Tag]
		}
		switch {
		case !ok:
			h.refuse(w, r, engineio.CodeSessionIDUnknown, security.ReasonSID, "sid not sealed by this edge's sticky_secret, or its worker left the config")
			return nil
		case !h.pool.codec.OwnedBy(sealed, c.id.UserID):
			// Another user's cookie (or none, or a new login) on this
			// session: it is not theirs. The client that opened it is
			// not disturbed; a client whose login changed opens a new
			// session on this answer.
			h.refuseIdentity(w, r, c.id)
			return nil
		case origin != "" && !h.pool.codec.OpenedFrom(sealed, origin) && !h.pool.codec.OpenedFrom(sealed, ""):
			h.refuseOrigin(w, r, origin)
			return nil
		case !c.up.serving():
			h.sessions.closed(q.SID)
			h.refuse(w, r, engineio.CodeSessionIDUnknown, security.ReasonUpstream, "the session's worker "+c.up.addr+" is unhealthy")
			return nil
		}
		c.workerSID = sealed.WorkerSID
		c.uri = r.URL.EscapedPath() + "?" + engineio.ReplaceSID(r.URL.RawQuery, c.workerSID)
	}
	c.sid = q.SID
	if q.Transport == engineio.WebSocket {
		h.serveWebSocket(w, r, &c)
		return nil
	}
	if c.sid != "" {
		ok, done := h.sessions.poll(r.Context(), c.sid, c.up.upstreamState, r.Method == http.MethodPost, now)
		if !ok {
			h.refuse(w, r, engineio.CodeBadRequest, security.ReasonMalformed, "a second "+r.Method+" of the session while one is in flight")
			return nil
		}
		defer done()
	}
	h.servePolling(w, r, &c)
	return nil
}

// methodAllowed refuses the requests no Engine.IO client sends: a polling
// request other than GET or POST, a POST that opens a session, and a
// websocket request that is not a WebSocket upgrade.
func (h *Handler) methodAllowed(w http.ResponseWriter, r *http.Request, q engineio.Query) bool {
	switch {
	case q.Transport == engineio.WebSocket && (r.Method != http.MethodGet || !websocket.IsWebSocketUpgrade(r)):
		h.refuse(w, r, engineio.CodeBadRequest, security.ReasonMalformed, "transport=websocket without a WebSocket upgrade")
	case q.Transport == engineio.Polling && r.Method != http.MethodGet && r.Method != http.MethodPost:
		h.refuse(w, r, engineio.CodeBadHandshakeMethod, security.ReasonMalformed, "method "+r.Method+" is not GET or POST")
	case q.Handshake() && r.Method != http.MethodGet:
		h.refuse(w, r, engineio.CodeBadHandshakeMethod, security.ReasonMalformed, "a handshake must be a GET")
	default:
		return true
	}
	return false
}

// call is one Engine.IO request on its way to its worker.
type call struct {
	up        *upstream
	sid       string // as the client sees it; empty for a handshake
	workerSID string
	uri       string       // request URI for the worker, with the worker's sid
	owner     sticky.Owner // who opens the session, for a handshake
	id        identity.Identity
	pol       *policy
}

// refuse answers with an Engine.IO error and logs why; reason is one of
// the refusal kinds the metrics count (malformed, sid, size, upstream).
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, code engineio.ErrorCode, reason, detail string) {
	security.Refused(reason)
	if reason == security.ReasonSID {
		security.Log(h.security, "socketio_proxy", security.SIDTampered, detail, r, security.Fields{})
	}
	if c := h.logger.Check(zapcore.InfoLevel, "refused Engine.IO request"); c != nil {
		c.Write(
			zap.String("reason", reason),
			zap.String("detail", detail),
			zap.String("remote_ip", security.ClientIP(r)),
			zap.String("method", r.Method),
			zap.String("uri", r.URL.Path),
		)
	}
	engineio.WriteError(w, code)
}

// refuseIdentity answers a request of a session from another user than
// the one who opened it.
func (h *Handler) refuseIdentity(w http.ResponseWriter, r *http.Request, id identity.Identity) {
	security.Refused(security.ReasonIdentity)
	security.Log(h.security, "socketio_proxy", security.IdentityMismatch,
		"the session was opened by another user (or before a login or logout)", r, security.Fields{UserID: id.UserID})
	engineio.WriteError(w, engineio.CodeSessionIDUnknown)
}

// refuseOrigin answers a request of a session from another origin than
// the one that opened it.
func (h *Handler) refuseOrigin(w http.ResponseWriter, r *http.Request, origin string) {
	security.Refused(security.ReasonOrigin)
	security.Log(h.security, "socketio_proxy", security.OriginRefused,
		"the session was opened from another origin", r, security.Fields{})
	engineio.WriteError(w, engineio.CodeForbidden)
}

// tooMany answers a client over a rate limit with 429 and Retry-After.
func (h *Handler) tooMany(w http.ResponseWriter, r *http.Request, wait time.Duration, detail string) {
	security.Refused(security.ReasonRate)
	security.Log(h.security, "socketio_proxy", security.RateLimited, detail, r, security.Fields{UserID: identity.Of(r).UserID})
	w.Header().Set("Retry-After", retryAfterSeconds(wait))
	writeJSON(w, http.StatusTooManyRequests, `{"code":3,"message":"Too many requests; retry after `+retryAfterSeconds(wait)+` s"}`)
}

// noWorker answers a handshake when no worker is healthy, with a 503 the
// client retries with its backoff.
func (h *Handler) noWorker(w http.ResponseWriter, r *http.Request) {
	security.Refused(security.ReasonUpstream)
	if c := h.logger.Check(zapcore.WarnLevel, "refused Engine.IO handshake"); c != nil {
		c.Write(zap.String("reason", "upstream"), zap.String("detail", "no healthy Socket.IO worker"),
			zap.String("remote_ip", security.ClientIP(r)))
	}
	writeJSON(w, http.StatusServiceUnavailable, `{"code":3,"message":"No Socket.IO worker is available"}`)
}

// upstreamFailed answers a request whose worker could not be reached and
// takes the worker out of rotation for FailDuration. A request of an
// existing session gets "Session ID unknown", so the client opens a new
// session at once instead of retrying a worker that is gone.
func (h *Handler) upstreamFailed(w http.ResponseWriter, r *http.Request, c *call, err error) {
	c.up.markDown(time.Now(), time.Duration(h.FailDuration))
	h.logger.Warn("Socket.IO worker unreachable; out of rotation",
		zap.String("upstream", c.up.addr), zap.Duration("for", time.Duration(h.FailDuration)),
		zap.String("remote_ip", security.ClientIP(r)), zap.Error(err))
	if c.sid == "" {
		c.up.sessions.Add(-1)
		writeJSON(w, http.StatusBadGateway, `{"code":3,"message":"No Socket.IO worker is reachable"}`)
		return
	}
	h.sessions.closed(c.sid)
	engineio.WriteError(w, engineio.CodeSessionIDUnknown)
}

// nextForHandshake takes the worker a handshake could not reach out of
// rotation and moves the handshake to another healthy worker: no session
// exists yet, so nothing is lost. It is false for a request of a session,
// a client that went away, or when no other worker is healthy; the caller
// then answers as before.
func (h *Handler) nextForHandshake(r *http.Request, c *call, err error) bool {
	if c.sid != "" || r.Context().Err() != nil {
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
		zap.String("remote_ip", security.ClientIP(r)), zap.Error(err))
	c.up.sessions.Add(-1)
	c.up = next
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
