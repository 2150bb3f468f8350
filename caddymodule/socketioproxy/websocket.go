package socketioproxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/time/rate"

	"github.com/flaskedge/flaskedge/internal/engineio"
	"github.com/flaskedge/flaskedge/internal/relay"
	"github.com/flaskedge/flaskedge/internal/security"
	"github.com/flaskedge/flaskedge/internal/socketio"
)

// upgrader accepts the client's side of a proxied WebSocket. The Origin
// check belongs to edge_cors, which runs before this handler; the worker
// still sees the Origin header and may check it too.
var upgrader = websocket.Upgrader{
	// A buffer of its own, smaller than net/http's 4 KiB, which is then
	// not kept for the connection's life. Larger frames take more reads.
	ReadBufferSize:    1024,
	WriteBufferPool:   writeBuffers,
	EnableCompression: false,
	CheckOrigin:       func(*http.Request) bool { return true },
	Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
		// Only reached for a malformed upgrade; ServeHTTP checked the
		// request beforehand, so this is a client speaking broken HTTP.
		engineio.WriteError(w, engineio.CodeBadRequest)
	},
}

// maxRefusalBody bounds how much of a worker's refusal of an upgrade is
// passed back to the client.
const maxRefusalBody = 4096

// serveWebSocket connects the client's WebSocket to the worker's. The
// worker is dialled first, so that its refusal (an unknown sid, a refused
// origin) reaches the client as the HTTP reply it would have sent; for a
// WebSocket-only handshake, the worker's open packet is read and sealed
// before the client's connection is upgraded.
func (h *Handler) serveWebSocket(w http.ResponseWriter, c *call) {
	r := c.r
	upConn, res, ok := h.dialWorker(w, c, c.uri)
	if !ok {
		return
	}

	newSession := c.sid == ""
	var open []byte
	if newSession {
		var ok bool
		if open, ok = h.readOpen(w, c, upConn); !ok {
			return
		}
	}
	sid := c.sid
	// The event-driven relay takes the worker's socket over from gorilla
	// only when gorilla holds none of its bytes unread.
	readAhead := unreadBytes(upConn, newSession)

	var respHeader http.Header
	if cookies := res.Header.Values("Set-Cookie"); len(cookies) > 0 {
		respHeader = http.Header{"Set-Cookie": cookies}
	}
	clientConn, err := upgrader.Upgrade(hijacker{w}, r, respHeader)
	if err != nil {
		upConn.Close()
		if newSession {
			// The session ends with its failed upgrade; a polling
			// session's goes on in polling.
			h.registry.closed(sid)
		}
		h.logDebug("client WebSocket upgrade failed", c, err)
		return
	}
	if open != nil {
		if err := clientConn.WriteMessage(websocket.TextMessage, open); err != nil {
			clientConn.Close()
			upConn.Close()
			h.registry.closed(sid)
			return
		}
	}

	// The relay outlives this request: ServeHTTP returns now, so that the
	// request, Caddy's per-request state, net/http's buffers and the
	// handler's stack are not held for the connection's life. Nothing
	// below may touch r or its context, which net/http cancels. On
	// Linux, a plain TCP connection's relay holds no goroutine and no
	// buffer while idle (see relay.Start); its filters and limits run on
	// the relay's shared goroutines and do not block. What the session
	// keeps is one wsSession.
	s := &wsSession{addr: c.up.addr, newSession: newSession, start: time.Now(), slot: h.slot, own: h.policy}
	h.registry.relayStarted(sid, c.up.upstreamState, s.start)
	// When the process exits: the Engine.IO close packet, then 1001, at
	// this relay's moment in the drain period.
	// Or when its worker is drained for a deploy, with a reason that says
	// so (see drain.go).
	stop := h.registry.relaying(&s.rs, time.Duration(h.DrainPeriod), c.up)
	s.live.init(c.id, h.logger)
	s.filters.init(h, s.policy, sid, c.client, &s.live, &s.inj, &s.upgraded)
	s.limit = msgLimit{f: &s.filters, userID: c.id.UserID}
	opt := relay.Options{
		Limit:        s.maxPayload,
		AdmitClient:  s.limit.admit,
		Count:        countWebSocket,
		Stop:         stop,
		Farewell:     farewell,
		StopReason:   "edge shutting down",
		Inject:       &s.inj,
		NoTakeover:   readAhead,
		FromClient:   &s.filters.fromClient,
		FromUpstream: &s.filters.fromUpstream,
	}
	s.roles.start(&s.filters)
	s.started.Add(1)
	evented := relay.Start(clientConn, upConn, opt, s.ended)
	s.relays = metrics.relays.WithLabelValues(relayEngine(evented))
	s.relays.Inc()
	s.started.Done()
}

// farewell is the Engine.IO close packet a relay sends its client before
// it closes for the edge's exit or a drain; never written to.
var farewell = []byte{byte(engineio.Close)}

// wsSession is what a relayed WebSocket session keeps for its life, in
// one piece: its filters, its role checks, its message bucket, its user
// and the relay's Injector.
type wsSession struct {
	filters    sessionFilters // and the session's handler, sid and client
	addr       string
	newSession bool
	start      time.Time
	slot       *policySlot
	own        *policy
	live       liveIdentity
	limit      msgLimit
	roles      roleWatch
	inj        relay.Injector
	upgraded   atomic.Bool
	rs         relayStop // the registry's record of the relay
	relays     prometheus.Gauge
	started    sync.WaitGroup // until relays is set
}

// policy is the session's policy of the moment (see policySlot), not
// the one of the config that upgraded it.
func (s *wsSession) policy() *policy { return s.slot.now(s.own) }

func (s *wsSession) maxPayload() int64 { return s.policy().maxPayload }

// ended is the relay's done: Start has returned, and it runs on
// another goroutine.
func (s *wsSession) ended(err error) {
	s.started.Wait()
	s.relays.Dec()
	s.roles.stop()
	h, client := s.filters.h, s.filters.client
	h.registry.unrelay(&s.rs)
	h.registry.relayEnded(s.filters.sid, s.newSession || s.upgraded.Load(), time.Now())
	if errors.Is(err, websocket.ErrReadLimit) {
		h.refusedMessageSize(client, s.policy().maxPayload)
	}
	if ce := h.logger.Check(zapcore.DebugLevel, "WebSocket closed"); ce != nil {
		ce.Write(zap.String("upstream", s.addr), zap.String("remote_ip", client.IP),
			zap.Duration("duration", time.Since(s.start)), zap.String("end", closeReason(err)))
	}
}

// dialWorker opens the worker's WebSocket at uri for the call: a
// handshake that cannot reach its worker moves to another (see
// nextForHandshake). When it fails, the client has its answer: the
// worker's refusal as the worker sent it, or the edge's.
func (h *Handler) dialWorker(w http.ResponseWriter, c *call, uri string) (*websocket.Conn, *http.Response, bool) {
	// The dial ends with the request, but its context holds none of the
	// request's values. gorilla bounds the handshake with a context
	// timer, and the runtime keeps a stopped timer, and its context, until
	// it would have fired, or until a quarter of the timers are such:
	// derived from the request's, it held Caddy's state of the request
	// and net/http's 8 KB of buffers, about 10 KB, for each connection
	// opened in the last dial_timeout (1.2 KB per idle WebSocket, 2,000
	// opened 100 at a time).
	//
	// gorilla watches the context only while it connects: a client that
	// leaves while the worker has yet to answer the upgrade ends the
	// wait through the connection's deadline (see dialing).
	d := new(dialing)
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), dialingKey{}, d))
	defer cancel()
	defer context.AfterFunc(c.r.Context(), func() { cancel(); d.interrupt() })()
	dial := func() (*websocket.Conn, *http.Response, error) {
		return c.up.dialer.DialContext(ctx, c.up.wsURL(uri), upstreamHeader(c.r, true))
	}
	upConn, res, err := dial()
	for err != nil && res == nil && h.nextForHandshake(c, err) {
		upConn, res, err = dial()
	}
	if err == nil {
		return upConn, res, true
	}
	switch {
	case res != nil:
		h.passRefusal(w, c, res)
	case c.r.Context().Err() != nil:
		// Nothing to answer: the client is gone. The worker is not
		// to blame, and keeps its place in rotation.
		if ce := h.logger.Check(zapcore.DebugLevel, "client left before the worker answered the WebSocket upgrade"); ce != nil {
			ce.Write(zap.String("upstream", c.up.addr), zap.String("remote_ip", c.client.IP), zap.Error(err))
		}
	default:
		h.upstreamFailed(w, c, err)
	}
	return nil, nil, false
}

// dialing is the worker connection a WebSocket dial has opened, so that
// the client's leaving can end the wait for the worker's answer to the
// upgrade, which gorilla bounds only by dial_timeout.
type dialing struct {
	mu   sync.Mutex
	conn net.Conn
	gone bool
}

type dialingKey struct{}

// opened records conn, the connection of the dial of ctx, if any.
func opened(ctx context.Context, conn net.Conn) {
	d, ok := ctx.Value(dialingKey{}).(*dialing)
	if !ok {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.conn = conn
	if d.gone {
		_ = conn.SetDeadline(time.Unix(1, 0))
	}
}

// interrupt ends the dial's reads and writes at once.
func (d *dialing) interrupt() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gone = true
	if d.conn != nil {
		_ = d.conn.SetDeadline(time.Unix(1, 0))
	}
}

// interruptible dials as dial does, and records the connection for the
// dial's interrupt.
func interruptible(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err == nil {
			opened(ctx, conn)
		}
		return conn, err
	}
}

// refusedMessageSize counts and logs a WebSocket session the relay
// closed with 1009 for a message over MaxPayload. The relay stops
// reading where the limit is crossed: the worker gets the same 1009 and
// never a whole message.
func (h *Handler) refusedMessageSize(client security.Client, max int64) {
	security.Refused(security.ReasonSize)
	if c := h.logger.Check(zapcore.InfoLevel, "WebSocket message over max_payload; session closed with 1009"); c != nil {
		c.Write(zap.String("reason", "size"), zap.Int64("max_payload", max),
			zap.String("remote_ip", client.IP))
	}
}

func countWebSocket(fromClient bool, size int64) { count(fromClient, true, 1, size) }

// errWorkerDrained is the close reason of a WebSocket session whose
// worker was drained for a deploy.
var errWorkerDrained = errors.New("worker draining for a deploy")

// messageLimit is a WebSocket session's own message bucket, under the
// rate of the policy of the moment: a reload that changes the rate gives
// the session a fresh bucket at the new rate. A session upgraded from
// polling (sid set) goes on with the bucket its POSTs drew from, so an
// upgrade does not buy it a fresh burst.
func (h *Handler) messageLimit(f *sessionFilters, userID string) func() error {
	m := &msgLimit{f: f, userID: userID}
	return m.admit
}

// msgLimit is messageLimit's state.
type msgLimit struct {
	f      *sessionFilters // the session's pol, client and sid
	userID string
	lim    *rate.Limiter // the session's own bucket, made at its first message
	lims   Rate          // lim's rate
}

func (m *msgLimit) admit() error {
	r := m.f.pol().messages
	if r == nil {
		return nil
	}
	h, sid := m.f.h, m.f.sid
	if sid != "" && h.buckets != nil && h.RateLimits != nil && h.RateLimits.Messages != nil && *r == *h.RateLimits.Messages {
		if ok, _ := h.buckets.take("m:"+sid, r, 1); ok {
			return nil
		}
	} else {
		if m.lim == nil || *r != m.lims {
			m.lim, m.lims = r.newLimiter(), *r
		}
		if m.lim.AllowN(clock(), 1) {
			return nil
		}
	}
	security.Refused(security.ReasonRate)
	security.LogClient(h.security, "socketio_proxy", security.RateLimited,
		"WebSocket session over its message rate "+r.String()+"; closed", m.f.client,
		security.Fields{UserID: m.userID})
	return rateCloseReason(time.Duration(r.Window))
}

// injector sends packets of the edge's own into a running session, and
// ends it: a relay's (relay.Injector) or a bridge's (bridgeInjector).
type injector interface {
	ToClient(msg []byte) error
	ToUpstream(msg []byte) error
	Close(reason string)
}

// clientPeek is how many bytes of each client message the relay looks
// at before streaming it: enough for the header of nearly every packet
// (type, attachment count, a namespace, an ack id), so the rare message
// that needs reading whole is one whose header runs longer.
const clientPeek = 32

// filters watch a WebSocket session's Socket.IO packets. Every client text
// message is read as python-socketio will read it: one the edge cannot
// read exactly the same way, or that python drops as malformed, ends the
// session with 1008 and never reaches the worker. With namespace rules
// (those of the policy of the moment), every CONNECT is checked against
// the session's user as of now, and the worker's answers to denial
// CONNECTs become the client's CONNECT_ERRORs. The worker's CONNECT
// replies and either side's DISCONNECTs keep the session's namespaces up
// to date. Only messages whose first clientPeek bytes leave this
// undecided, and the few packets that matter (CONNECT, DISCONNECT), are
// read whole; the rest stream.
// The session's message limit (see messageLimit) and its role checks
// (see watchRoles) work from its filters' fields.
func (h *Handler) filters(pol func() *policy, sid string, client security.Client, live *liveIdentity, inj injector, upgraded *atomic.Bool) *sessionFilters {
	f := new(sessionFilters)
	f.init(h, pol, sid, client, live, inj, upgraded)
	return f
}

// sessionFilters is the state of a session's filters (see filters), in
// one piece: an idle session holds it for its life.
type sessionFilters struct {
	h        *Handler
	pol      func() *policy
	sid      string
	client   security.Client
	live     *liveIdentity
	inj      injector
	upgraded *atomic.Bool

	// The attachments python-socketio awaits from the client. Only the
	// client's direction changes them; the other goroutines read
	// clientAwaits before sending the worker a DISCONNECT it could
	// swallow.
	clientAtt    attachments
	clientAwaits atomic.Int64
	dropThis     bool            // the message Peek chose is to be dropped
	attachThis   bool            // the message Peek saw is an awaited attachment
	told         map[string]bool // namespaces whose withdrawal the client was told of; made on first use
	workerDrop   atomic.Int64

	fromClient, fromUpstream relay.Filter
}

func (f *sessionFilters) init(h *Handler, pol func() *policy, sid string, client security.Client, live *liveIdentity, inj injector, upgraded *atomic.Bool) {
	f.h, f.pol, f.sid, f.client, f.live, f.inj, f.upgraded = h, pol, sid, client, live, inj, upgraded
	f.fromClient = relay.Filter{PeekLen: clientPeek, Binary: f.clientBinary, Peek: f.clientPeek, Rewrite: f.clientRewrite}
	f.fromUpstream = relay.Filter{PeekLen: maxWorkerPeek, Binary: f.workerBinary, Peek: f.workerPeek, Rewrite: f.workerRewrite}
}

// toWorker sends the worker a DISCONNECT of the edge's own, or ends the
// session when python-socketio would take it as an attachment.
func (f *sessionFilters) toWorker(ns string) {
	if f.clientAwaits.Load() > 0 {
		f.inj.Close("a namespace was withdrawn while a binary event awaited its attachments")
		return
	}
	_ = f.inj.ToUpstream(disconnectPacket(ns))
}

// withdrawn tells the client, once, that ns was withdrawn.
func (f *sessionFilters) withdrawn(ns string) bool {
	if f.told[ns] {
		return false
	}
	if f.told == nil {
		f.told = make(map[string]bool)
	}
	f.told[ns] = true
	f.h.registry.left(f.sid, ns)
	_ = f.inj.ToClient(disconnectPacket(ns))
	return true
}

func (f *sessionFilters) clientBinary() bool {
	drop, _ := f.clientAtt.next()
	f.clientAwaits.Store(f.clientAtt.pending)
	return !drop
}

func (f *sessionFilters) clientPeek(p []byte) bool {
	f.attachThis = false
	if counts(p, false) {
		var drop bool
		drop, f.attachThis = f.clientAtt.next()
		f.clientAwaits.Store(f.clientAtt.pending)
		if drop {
			f.dropThis = true
			return true
		}
	}
	// Read as a packet even where python may take it as an attachment:
	// that is only stricter.
	pkt, decided := socketio.ReadHead(p)
	if !decided {
		return true
	}
	if pkt.Kind != socketio.Message {
		if len(p) == 1 && p[0] == byte(engineio.Upgrade) {
			// The client moved its session here: it ends with this
			// WebSocket.
			f.upgraded.Store(true)
		}
		return false
	}
	switch pkt.Type {
	case socketio.Disconnect:
		return true
	case socketio.Connect:
		// Read whole even without rules: no client may connect under
		// the denial prefix (checkPacket).
		return true
	}
	if (pkt.Type == socketio.BinaryEvent || pkt.Type == socketio.BinaryAck) && pkt.Attachments == 0 {
		return true // refused by checkPacket
	}
	pl := f.pol()
	if pl.hasRules() && pl.admit(f.live.recent(), string(pkt.Namespace)) != nil {
		// A packet to a namespace the user may no longer use.
		return true
	}
	if !f.attachThis {
		f.clientAtt.read(pkt, false)
		f.clientAwaits.Store(f.clientAtt.pending)
	}
	return false
}

func (f *sessionFilters) clientRewrite(msg []byte) ([]byte, error) {
	if f.dropThis {
		f.dropThis = false
		return nil, nil
	}
	pkt, out, err := f.h.checkPacket(f.pol(), f.client, f.live, msg, false, f.withdrawn)
	if err != nil {
		security.Refused(security.ReasonMalformed)
		return nil, err
	}
	if !f.attachThis {
		f.clientAtt.read(pkt, out == nil || len(out) != len(msg) || &out[0] != &msg[0])
		f.clientAwaits.Store(f.clientAtt.pending)
	}
	if pkt.Kind == socketio.Message && pkt.Type == socketio.Connect {
		delete(f.told, string(pkt.Namespace))
	}
	f.h.followClient(f.sid, msg)
	return out, nil
}

func (f *sessionFilters) workerBinary() bool {
	if f.workerDrop.Load() > 0 {
		f.workerDrop.Add(-1)
		return false
	}
	return true
}

func (f *sessionFilters) workerPeek(p []byte) bool {
	if socketio.IsDenialReply(p) {
		return true
	}
	t, isMessage := socketio.WorkerType(p)
	switch {
	case !isMessage:
		return false
	case t == socketio.Connect || t == socketio.Disconnect:
		return true
	}
	pl := f.pol()
	if !pl.hasRules() || !(socketio.Head{Type: t}).CarriesData() {
		return false
	}
	head, ok := socketio.ReadWorker(p, len(p) < maxWorkerPeek)
	if !ok {
		// A header longer than the peek: read it whole.
		return len(p) >= maxWorkerPeek
	}
	return pl.admit(f.live.recent(), string(head.Namespace)) != nil
}

func (f *sessionFilters) workerRewrite(msg []byte) ([]byte, error) {
	if ce, ok := socketio.DenialConnectError(msg); ok {
		return ce, nil
	}
	if head, ok := socketio.ReadWorker(msg, true); ok && head.CarriesData() {
		ns := string(head.Namespace)
		id := f.live.recent()
		if d := f.pol().admit(id, ns); d != nil {
			// The worker's data for a namespace withdrawn from the
			// session, and its attachments, do not reach the client;
			// the client gets the DISCONNECT instead, and so does the
			// worker.
			f.workerDrop.Store(head.Attachments)
			f.h.logWithdrawn(d, id, f.client)
			f.h.registry.left(f.sid, ns)
			f.toWorker(ns)
			return disconnectPacket(ns), nil
		}
	}
	f.h.registry.follow(f.sid, msg, true)
	return msg, nil
}

// maxWorkerPeek is how many bytes of each worker message the relay looks
// at: a packet header and a namespace of usual length.
const maxWorkerPeek = 32

// followClient records a client's DISCONNECT of a namespace, read as
// python-socketio reads it.
func (h *Handler) followClient(sid string, p []byte) {
	if pkt, err := socketio.Read(p, false); err == nil && pkt.Kind == socketio.Message && pkt.Type == socketio.Disconnect {
		h.registry.clientLeft(sid, string(pkt.Namespace))
	}
}

// passRefusal relays the worker's HTTP answer to an upgrade it refused.
func (h *Handler) passRefusal(w http.ResponseWriter, c *call, res *http.Response) {
	defer res.Body.Close()
	if c.sid != "" && res.StatusCode == http.StatusBadRequest {
		h.registry.closed(c.sid)
	}
	if ce := h.logger.Check(zapcore.DebugLevel, "worker refused WebSocket upgrade"); ce != nil {
		ce.Write(zap.String("upstream", c.up.addr), zap.Int("status", res.StatusCode), zap.String("remote_ip", c.client.IP))
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
	if err == nil {
		return ""
	}
	return err.Error()
}
