package socketioproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
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
	// the relay's shared goroutines and do not block.
	client := c.client
	h.registry.relayStarted(sid, c.up.upstreamState, time.Now())
	// When the process exits: the Engine.IO close packet, then 1001, at
	// this relay's moment in the drain period.
	// Or when its worker is drained for a deploy, with a reason that says
	// so (see drain.go).
	stop, relayDone := h.registry.relaying(time.Duration(h.DrainPeriod), c.up)
	// The session follows the policy of the moment (see policySlot), not
	// the one of the config that upgraded it.
	slot, own := h.slot, h.policy
	pol := func() *policy { return slot.now(own) }
	live := newLiveIdentity(c.id, h.logger)
	opt := relay.Options{
		Limit:       func() int64 { return pol().maxPayload },
		AdmitClient: h.messageLimit(pol, client, c.id.UserID, c.sid),
		Count:       countWebSocket,
		Stop:        stop,
		Farewell:    []byte{byte(engineio.Close)},
		StopReason:  "edge shutting down",
		Inject:      new(relay.Injector),
		NoTakeover:  readAhead,
	}
	var upgraded atomic.Bool
	var toWorker func(ns string)
	opt.FromClient, opt.FromUpstream, toWorker = h.filters(pol, sid, client, live, opt.Inject, &upgraded)
	stopWatching := h.watchRoles(pol, sid, live, client, opt.Inject, toWorker)
	addr := c.up.addr
	start := time.Now()
	var relays prometheus.Gauge
	started := make(chan struct{})
	evented := relay.Start(clientConn, upConn, opt, func(err error) {
		// Start has returned: done runs on another goroutine, after.
		<-started
		relays.Dec()
		stopWatching()
		relayDone()
		h.registry.relayEnded(sid, newSession || upgraded.Load(), time.Now())
		if errors.Is(err, websocket.ErrReadLimit) {
			h.refusedMessageSize(client, pol().maxPayload)
		}
		if ce := h.logger.Check(zapcore.DebugLevel, "WebSocket closed"); ce != nil {
			ce.Write(zap.String("upstream", addr), zap.String("remote_ip", client.IP),
				zap.Duration("duration", time.Since(start)), zap.String("end", closeReason(err)))
		}
	})
	relays = metrics.relays.WithLabelValues(relayEngine(evented))
	relays.Inc()
	close(started)
}

// dialWorker opens the worker's WebSocket at uri for the call: a
// handshake that cannot reach its worker moves to another (see
// nextForHandshake). When it fails, the client has its answer: the
// worker's refusal as the worker sent it, or the edge's.
func (h *Handler) dialWorker(w http.ResponseWriter, c *call, uri string) (*websocket.Conn, *http.Response, bool) {
	dial := func() (*websocket.Conn, *http.Response, error) {
		return c.up.dialer.DialContext(c.r.Context(), c.up.wsURL(uri), upstreamHeader(c.r, true))
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
	default:
		h.upstreamFailed(w, c, err)
	}
	return nil, nil, false
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
func (h *Handler) messageLimit(pol func() *policy, client security.Client, userID, sid string) func() error {
	var (
		lim  *rate.Limiter
		lims Rate
	)
	return func() error {
		r := pol().messages
		if r == nil {
			return nil
		}
		if sid != "" && h.buckets != nil && h.RateLimits != nil && h.RateLimits.Messages != nil && *r == *h.RateLimits.Messages {
			if ok, _ := h.buckets.take("m:"+sid, r, 1); ok {
				return nil
			}
		} else {
			if lim == nil || *r != lims {
				lim, lims = r.newLimiter(), *r
			}
			if lim.AllowN(clock(), 1) {
				return nil
			}
		}
		security.Refused(security.ReasonRate)
		security.LogClient(h.security, "socketio_proxy", security.RateLimited,
			"WebSocket session over its message rate "+r.String()+"; closed", client,
			security.Fields{UserID: userID})
		return rateCloseReason(time.Duration(r.Window))
	}
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
func (h *Handler) filters(pol func() *policy, sid string, client security.Client, live *liveIdentity, inj injector, upgraded *atomic.Bool) (fromClient, fromUpstream *relay.Filter, toWorker func(ns string)) {
	// The attachments python-socketio awaits from the client. Only the
	// client's direction changes them; the other goroutines read pending
	// before sending the worker a DISCONNECT it could swallow.
	var (
		clientAtt    attachments
		clientAwaits atomic.Int64
		dropThis     bool // the message Peek chose is to be dropped
		attachThis   bool // the message Peek saw is an awaited attachment
		told         = make(map[string]bool)
		workerDrop   atomic.Int64
	)
	// toWorker sends the worker a DISCONNECT of the edge's own, or ends
	// the session when python-socketio would take it as an attachment.
	toWorker = func(ns string) {
		if clientAwaits.Load() > 0 {
			inj.Close("a namespace was withdrawn while a binary event awaited its attachments")
			return
		}
		_ = inj.ToUpstream(disconnectPacket(ns))
	}
	withdrawn := func(ns string) bool {
		if told[ns] {
			return false
		}
		told[ns] = true
		h.registry.left(sid, ns)
		_ = inj.ToClient(disconnectPacket(ns))
		return true
	}
	fromClient = &relay.Filter{
		PeekLen: clientPeek,
		Binary: func() bool {
			drop, _ := clientAtt.next()
			clientAwaits.Store(clientAtt.pending)
			return !drop
		},
		Peek: func(p []byte) bool {
			attachThis = false
			if counts(p, false) {
				var drop bool
				drop, attachThis = clientAtt.next()
				clientAwaits.Store(clientAtt.pending)
				if drop {
					dropThis = true
					return true
				}
			}
			// Read as a packet even where python may take it as an
			// attachment: that is only stricter.
			pkt, decided := socketio.ReadHead(p)
			if !decided {
				return true
			}
			if pkt.Kind != socketio.Message {
				if len(p) == 1 && p[0] == byte(engineio.Upgrade) {
					// The client moved its session here: it ends with
					// this WebSocket.
					upgraded.Store(true)
				}
				return false
			}
			switch pkt.Type {
			case socketio.Disconnect:
				return true
			case socketio.Connect:
				// Read whole even without rules: no client may
				// connect under the denial prefix (checkPacket).
				return true
			}
			if (pkt.Type == socketio.BinaryEvent || pkt.Type == socketio.BinaryAck) && pkt.Attachments == 0 {
				return true // refused by checkPacket
			}
			pl := pol()
			if pl.hasRules() && pl.admit(live.recent(), string(pkt.Namespace)) != nil {
				// A packet to a namespace the user may no longer use.
				return true
			}
			if !attachThis {
				clientAtt.read(pkt, false)
				clientAwaits.Store(clientAtt.pending)
			}
			return false
		},
		Rewrite: func(msg []byte) ([]byte, error) {
			if dropThis {
				dropThis = false
				return nil, nil
			}
			pkt, out, err := h.checkPacket(pol(), client, live, msg, false, withdrawn)
			if err != nil {
				security.Refused(security.ReasonMalformed)
				return nil, err
			}
			if !attachThis {
				clientAtt.read(pkt, out == nil || len(out) != len(msg) || &out[0] != &msg[0])
				clientAwaits.Store(clientAtt.pending)
			}
			if pkt.Kind == socketio.Message && pkt.Type == socketio.Connect {
				delete(told, string(pkt.Namespace))
			}
			h.followClient(sid, msg)
			return out, nil
		},
	}
	fromUpstream = &relay.Filter{
		PeekLen: maxWorkerPeek,
		Binary: func() bool {
			if workerDrop.Load() > 0 {
				workerDrop.Add(-1)
				return false
			}
			return true
		},
		Peek: func(p []byte) bool {
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
			pl := pol()
			if !pl.hasRules() || !(socketio.Head{Type: t}).CarriesData() {
				return false
			}
			head, ok := socketio.ReadWorker(p, len(p) < maxWorkerPeek)
			if !ok {
				// A header longer than the peek: read it whole.
				return len(p) >= maxWorkerPeek
			}
			return pl.admit(live.recent(), string(head.Namespace)) != nil
		},
		Rewrite: func(msg []byte) ([]byte, error) {
			if ce, ok := socketio.DenialConnectError(msg); ok {
				return ce, nil
			}
			if head, ok := socketio.ReadWorker(msg, true); ok && head.CarriesData() {
				ns := string(head.Namespace)
				id := live.recent()
				if d := pol().admit(id, ns); d != nil {
					// The worker's data for a namespace withdrawn from
					// the session, and its attachments, do not reach
					// the client; the client gets the DISCONNECT
					// instead, and so does the worker.
					workerDrop.Store(head.Attachments)
					h.logWithdrawn(d, id, client)
					h.registry.left(sid, ns)
					toWorker(ns)
					return disconnectPacket(ns), nil
				}
			}
			h.registry.follow(sid, msg, true)
			return msg, nil
		},
	}
	return fromClient, fromUpstream, toWorker
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
