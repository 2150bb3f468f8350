package socketioproxy

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/flaskedge/flaskedge/internal/engineio"
	"github.com/flaskedge/flaskedge/internal/identity"
	"github.com/flaskedge/flaskedge/internal/relay"
	"github.com/flaskedge/flaskedge/internal/security"
	"github.com/flaskedge/flaskedge/internal/socketio"
	"github.com/flaskedge/flaskedge/internal/sticky"
)

// A bridge is one Engine.IO session of a handler with Recover. The edge
// is the Engine.IO server to the client (long-polling, WebSocket, the
// upgrade between them, a heartbeat of its own) and an Engine.IO client
// of the worker over one WebSocket, whose pings it answers. Every
// Socket.IO packet crosses the same filters as on a relayed WebSocket
// (namespace rules, the session's live identity, attachments, rates), so
// the rules hold the same on both transports.
//
// The client side comes and goes: when it goes away while a recoverable
// namespace is connected, the bridge holds the worker's session for the
// Recover window, and a client that reconnects and presents the namespace's
// pid takes it over (adopt), its new Engine.IO session's transport now
// served by this bridge.
type bridge struct {
	h        *Handler
	rc       *Recover
	id       [16]byte
	openSID  string // the sealed sid of the session that opened it
	up       *upstream
	conn     *websocket.Conn // the worker's
	owner    sticky.Owner
	client   security.Client
	userID   string
	interval time.Duration // the worker's pingInterval, the edge's too
	timeout  time.Duration
	pol      func() *policy
	fromC    *relay.Filter
	fromW    *relay.Filter
	live     *liveIdentity
	limit    func() error
	unwatch  func()
	rs       relayStop  // the registry's record of the relay
	wmu      sync.Mutex // one writer to conn at a time

	mu       sync.Mutex
	sids     []string      // every sealed sid that leads here
	current  string        // the sid of the client's Engine.IO session now
	ws       *clientSocket // the client's WebSocket, once upgraded
	queue    []eioPacket   // for the client's next poll
	queued   int64         // bytes in queue
	wake     chan struct{} // closed when the queue changes or the bridge ends
	getting  bool          // a poll waits
	probing  bool          // an upgrade was probed: polls end at once
	away     bool          // the client is gone; the session is held
	awayAt   time.Time
	awayT    *time.Timer
	ended    bool
	endedCh  chan struct{}
	heartT   *time.Timer
	pongDue  bool // a ping awaits its pong
	spaces   map[string]*space
	log      []entry
	logBytes int64
	seq      uint64
	pingMark uint64       // the last offset sent before the latest ping
	workerAt int          // the log entry the worker's next attachments join; -1: none
	workerN  int64        // attachments still to come after the worker's last binary packet
	spliced  bool         // another session's client took this one over, or this one another's
	closed   bool         // the client sent the Engine.IO close packet: no return in place
	overRate *overRate    // why the session ended, when it was its message rate
	upgraded bool         // the client has had a WebSocket: Engine.IO never goes back to polling
	withdraw func(string) // tells the worker a namespace was withdrawn (see filters)
	closing  bool         // the window passed or the bounds were crossed: ending
	spacesT  *time.Timer  // after a recovery, gives up the namespaces still held at the window's end
	pollCut  *time.Timer
}

// overRate ends a bridged session over its message rate: a WebSocket
// closes with 1008 and msg, as a relay's; a POST gets 429 with
// Retry-After, as an unbridged polling session's.
type overRate struct {
	wait time.Duration
	msg  string
}

func (e *overRate) Error() string { return e.msg }

// eioPacket is one Engine.IO packet: its text (type byte first) or, for
// binary, the attachment's bytes.
type eioPacket struct {
	data   []byte
	binary bool
}

func (p eioPacket) size() int64 { return int64(len(p.data)) }

// space is a namespace the worker connected the session to.
type space struct {
	recoverable bool
	pid         string
	reply       []byte // the CONNECT reply the client got, pid added
	held        bool   // the client has not connected it again since it went away
	wasLive     bool   // it was live when the client went away (see resumeInPlace)
	floor       uint64 // events up to this offset may be gone from the log
}

// entry is a packet the client may need again: an event sent with an
// offset (seq), or anything the worker sent while the client was away.
type entry struct {
	ns    string
	seq   uint64 // 0 for a packet without offset
	ackID string // an event that asks for an acknowledgement, kept until the client gives it
	held  bool
	pkts  []eioPacket
	size  int64
}

// clientSocket is the client's WebSocket; which bridge it feeds may
// change when its session adopts another (see adopt).
type clientSocket struct {
	conn *websocket.Conn
	mu   sync.Mutex // one writer
	b    atomic.Pointer[bridge]
	// closing is set once the edge sent its close frame: what the
	// client sends from then on is read and thrown away (see close).
	closing atomic.Bool
}

func (cs *clientSocket) write(p eioPacket) error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.writeLocked(p)
}

// writeLocked writes p; cs.mu is held.
func (cs *clientSocket) writeLocked(p eioPacket) error {
	_ = cs.conn.SetWriteDeadline(time.Now().Add(controlWait))
	mt := websocket.TextMessage
	if p.binary {
		mt = websocket.BinaryMessage
	}
	return cs.conn.WriteMessage(mt, p.data)
}

// close sends the close frame and ends the writing side; the goroutine
// reading the socket (readClient) throws away what the client still
// sends, which reaches no session, and closes the socket once the client
// has answered, or after a grace (see relay.Linger).
func (cs *clientSocket) close(code int, reason string) {
	cs.closing.Store(true)
	cs.mu.Lock()
	_ = cs.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, truncateReason(reason)), time.Now().Add(controlWait))
	cs.mu.Unlock()
	relay.HalfClose(cs.conn, controlWait)
}

// controlWait bounds a write to a client that stopped reading.
const controlWait = 5 * time.Second

func truncateReason(s string) string {
	if len(s) > 120 {
		return s[:120]
	}
	return s
}

// pollGrace is how long after a poll ended the client has to send the
// next one before it counts as gone.
const pollGrace = time.Second

// maxWorkerMessage bounds a message the edge reads from a worker.
const maxWorkerMessage = 64 << 20

// bridgeInjector lets the filters and the role watcher send packets of
// the edge's own on a bridge, as relay.Injector does on a relay.
type bridgeInjector struct{ b atomic.Pointer[bridge] }

func (in *bridgeInjector) ToClient(msg []byte) error {
	if b := in.b.Load(); b != nil {
		b.toClient(eioPacket{data: msg})
	}
	return nil
}

func (in *bridgeInjector) ToUpstream(msg []byte) error {
	if b := in.b.Load(); b != nil {
		return b.toWorker(eioPacket{data: msg})
	}
	return relay.ErrNotRelaying
}

func (in *bridgeInjector) Close(reason string) {
	if b := in.b.Load(); b != nil {
		b.end(reason, websocket.ClosePolicyViolation)
	}
}

// newBridge starts the bridge of a session whose worker WebSocket upConn
// was opened and whose open packet was read (c.sid is the sealed sid).
func (h *Handler) newBridge(c *call, upConn *websocket.Conn, o engineio.OpenPacket) *bridge {
	b := &bridge{
		h: h, rc: h.Recover, openSID: c.sid, up: c.up, conn: upConn,
		owner: c.owner, client: c.client, userID: c.id.UserID,
		interval: time.Duration(o.PingInterval) * time.Millisecond,
		timeout:  time.Duration(o.PingTimeout) * time.Millisecond,
		sids:     []string{c.sid},
		current:  c.sid,
		wake:     make(chan struct{}),
		endedCh:  make(chan struct{}),
		spaces:   make(map[string]*space),
		workerAt: -1,
	}
	if b.interval <= 0 {
		b.interval = 25 * time.Second
	}
	if b.timeout <= 0 {
		b.timeout = 20 * time.Second
	}
	_, _ = rand.Read(b.id[:])
	slot, own := h.slot, h.policy
	b.pol = func() *policy { return slot.now(own) }
	b.live = newLiveIdentity(c.id, h.logger)
	inj := new(bridgeInjector)
	inj.b.Store(b)
	var upgraded atomic.Bool
	f := h.filters(b.pol, c.sid, c.client, b.live, inj, &upgraded)
	b.fromC, b.fromW, b.withdraw = &f.fromClient, &f.fromUpstream, f.toWorker
	lim := h.messageLimit(f, c.id.UserID)
	b.limit = func() error {
		err := lim()
		if err == nil {
			return nil
		}
		wait := time.Second
		if r := b.pol().messages; r != nil {
			wait = time.Duration(r.Window)
		}
		return &overRate{wait: wait, msg: err.Error()}
	}
	b.unwatch = h.watchRoles(f)
	h.registry.relayStarted(c.sid, c.up.upstreamState, time.Now())
	stop := h.registry.relaying(&b.rs, time.Duration(h.DrainPeriod), c.up)
	stop.OnStop(func(reason string) {
		if reason == "" {
			reason = "edge shutting down"
		}
		b.end(reason, websocket.CloseGoingAway)
	})
	bridges.add(b)
	b.heartT = time.AfterFunc(b.interval, b.ping)
	upConn.SetReadLimit(maxWorkerMessage)
	go b.readWorker()
	return b
}

// --- the worker's side ---

func (b *bridge) toWorker(p eioPacket) error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	_ = b.conn.SetWriteDeadline(time.Now().Add(controlWait))
	mt := websocket.TextMessage
	if p.binary {
		mt = websocket.BinaryMessage
	}
	return b.conn.WriteMessage(mt, p.data)
}

// readWorker reads the worker's messages until the session ends.
func (b *bridge) readWorker() {
	// The worker pings every interval: a worker silent for longer than
	// an interval and a timeout is gone, even if its connection does
	// not say so.
	silence := b.interval + b.timeout + 5*time.Second
	for {
		_ = b.conn.SetReadDeadline(time.Now().Add(silence))
		mt, msg, err := b.conn.ReadMessage()
		if err != nil {
			b.end("worker closed the session", websocket.CloseGoingAway)
			return
		}
		count(false, b.clientOnWebSocket(), 1, int64(len(msg)))
		if mt == websocket.BinaryMessage {
			if !b.fromW.Binary() {
				continue
			}
			b.fromWorker(eioPacket{data: msg, binary: true}, socketio.Head{}, false)
			continue
		}
		if len(msg) == 0 {
			continue
		}
		switch engineio.PacketType(msg[0]) {
		case engineio.Ping:
			// The client's part, played by the edge whether or not
			// the client is there: the edge has a heartbeat of its
			// own with the client.
			pong := append([]byte{byte(engineio.Pong)}, msg[1:]...)
			if b.toWorker(eioPacket{data: pong}) != nil {
				b.end("worker unreachable", websocket.CloseGoingAway)
				return
			}
			continue
		case engineio.Close:
			b.end("worker closed the session", websocket.CloseGoingAway)
			return
		case engineio.Message:
		default:
			continue
		}
		out := msg
		if b.fromW.Peek(msg[:min(len(msg), b.fromW.PeekLen)]) {
			if out, err = b.fromW.Rewrite(msg); err != nil {
				b.end(err.Error(), websocket.ClosePolicyViolation)
				return
			}
			if out == nil {
				continue
			}
		}
		head, ok := socketio.ReadWorker(out, true)
		b.fromWorker(eioPacket{data: out}, head, ok)
	}
}

// fromWorker passes one packet of the worker's to the client, adding
// the recovery protocol's parts, and keeps what the client may need
// again.
func (b *bridge) fromWorker(p eioPacket, head socketio.Head, isSocketIO bool) {
	b.mu.Lock()
	if b.ended {
		b.mu.Unlock()
		return
	}
	if p.binary {
		// An attachment goes where its packet went.
		if b.workerN > 0 {
			b.workerN--
			if b.workerAt >= 0 {
				e := &b.log[b.workerAt]
				e.pkts = append(e.pkts, p)
				e.size += p.size()
				b.logBytes += p.size()
				if e.held {
					away := b.away
					b.mu.Unlock()
					b.checkBounds()
					if away {
						b.toClient(p)
					}
					return
				}
			}
		}
		b.mu.Unlock()
		b.toClient(p)
		return
	}
	b.workerAt, b.workerN = -1, 0
	if !isSocketIO {
		b.mu.Unlock()
		b.toClient(p)
		return
	}
	ns := string(head.Namespace)
	sp := b.spaces[ns]
	switch head.Type {
	case socketio.Connect:
		if b.rc.covers(ns) {
			if sp == nil || sp.pid == "" {
				sp = &space{recoverable: true, pid: b.h.pids.seal(b.id, ns)}
			}
			if withPid, err := socketio.WithPid(p.data, sp.pid); err == nil {
				p.data = withPid
				sp.reply = withPid
			} else {
				sp.recoverable = false
			}
		} else {
			sp = &space{}
		}
		sp.held = false
		b.spaces[ns] = sp
	case socketio.Disconnect:
		delete(b.spaces, ns)
	}
	if sp == nil || !sp.recoverable {
		b.mu.Unlock()
		b.toClient(p)
		return
	}
	var e *entry
	if head.Type == socketio.Event || head.Type == socketio.BinaryEvent {
		if id := ackIDOf(p.data); id != "" {
			// An event that asks for an acknowledgement gets no
			// offset, as with the Node server (socket.io-client
			// passes the ack callback last, where the offset would
			// go): the client's acknowledgement says it arrived.
			e = &entry{ns: ns, ackID: id}
		} else if withOff, err := socketio.WithOffset(p.data, strconv.FormatUint(b.seq+1, 10)); err == nil {
			b.seq++
			p.data = withOff
			e = &entry{ns: ns, seq: b.seq}
		}
	}
	if e == nil && (b.away || sp.held) {
		e = &entry{ns: ns}
	}
	if e != nil {
		e.held = b.away || sp.held
		e.pkts = []eioPacket{p}
		e.size = p.size()
		b.log = append(b.log, *e)
		b.logBytes += e.size
		b.workerAt = len(b.log) - 1
		b.workerN = head.Attachments
		if !e.held {
			b.trimLive()
		}
	} else {
		b.workerN = head.Attachments
	}
	held, away := b.away || sp.held, b.away
	b.mu.Unlock()
	if held {
		b.checkBounds()
		if !away {
			// The client is back, but has not connected this
			// namespace again yet: it gets the packet with the
			// namespace's replay.
			return
		}
	}
	// While the client is away the queue keeps it too, for a polling
	// client that comes back on the same session.
	b.toClient(p)
}

// ackIDOf is the ack id of a packet, "" when it has none.
func ackIDOf(p []byte) string {
	pkt, err := socketio.Read(p, false)
	if err != nil || pkt.ID == nil {
		return ""
	}
	return string(pkt.ID)
}

// acked forgets the event the client acknowledged.
func (b *bridge) acked(ns, id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range b.log {
		if e := &b.log[i]; e.ackID == id && e.ns == ns && !e.held {
			b.logBytes -= e.size
			if b.workerAt == i {
				b.workerAt = -1
			} else if b.workerAt > i {
				b.workerAt--
			}
			b.log = append(b.log[:i], b.log[i+1:]...)
			return
		}
	}
}

// trimLive drops the oldest events the client was sent while the log is
// over its bounds; their namespaces' floors record that they are gone.
// Called with b.mu held.
func (b *bridge) trimLive() {
	live := 0
	for _, e := range b.log {
		if !e.held {
			live++
		}
	}
	for i := 0; i < len(b.log) && live > 0 && (len(b.log) > b.rc.MaxPackets || b.logBytes > b.rc.MaxBytes); {
		e := b.log[i]
		if e.held {
			i++
			continue
		}
		if sp := b.spaces[e.ns]; sp != nil && e.seq > sp.floor {
			sp.floor = e.seq
		}
		b.logBytes -= e.size
		b.log = append(b.log[:i], b.log[i+1:]...)
		if b.workerAt == i {
			b.workerAt = -1
		} else if b.workerAt > i {
			b.workerAt--
		}
		live--
	}
}

// dropLog removes the first n entries. Called with b.mu held.
func (b *bridge) dropLog(n int) {
	if n == 0 {
		return
	}
	b.log = append(b.log[:0:0], b.log[n:]...)
	if b.workerAt -= n; b.workerAt < 0 {
		b.workerAt = -1
	}
}

// checkBounds ends a held session whose log outgrew the bounds: it can no
// longer be recovered whole.
func (b *bridge) checkBounds() {
	b.mu.Lock()
	over := len(b.log) > b.rc.MaxPackets || b.logBytes > b.rc.MaxBytes
	away := b.away
	var held []string
	for ns, sp := range b.spaces {
		if sp.held {
			held = append(held, ns)
		}
	}
	b.mu.Unlock()
	switch {
	case !over:
	case away:
		b.h.logger.Info("held Socket.IO session over its recover bounds; ended",
			zap.String("upstream", b.up.addr), zap.Int("max_packets", b.rc.MaxPackets), zap.Int64("max_bytes", b.rc.MaxBytes))
		b.endHeld("overflowed")
	case len(held) > 0:
		// Recovered, but namespaces of it still wait for their
		// client: they can no longer be recovered whole.
		for _, ns := range held {
			b.giveUp(ns)
		}
		countRecovery("overflowed", 0)
	}
}

// --- the client's side ---

func (b *bridge) clientOnWebSocket() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ws != nil
}

// toClient sends p on the client's transport: its WebSocket, or the queue
// its next poll takes. While the client is away, packets that are not
// held are dropped (heartbeats, non-recoverable namespaces).
func (b *bridge) toClient(p eioPacket) {
	b.mu.Lock()
	if b.ended {
		b.mu.Unlock()
		return
	}
	if ws := b.ws; ws != nil {
		b.mu.Unlock()
		if err := ws.write(p); err != nil {
			b.clientGone(ws, err)
		}
		return
	}
	// The queue: for the next poll, or, while the client is away, for
	// its return on the same session. Its bytes are shared with the
	// log's.
	b.queue = append(b.queue, p)
	b.queued += p.size()
	over := b.queued > max(b.rc.MaxBytes, b.pol().maxPayload)
	away := b.away
	b.wakeLocked()
	b.mu.Unlock()
	switch {
	case over && away:
		b.h.logger.Info("held Socket.IO session over its recover bounds; ended",
			zap.String("upstream", b.up.addr), zap.Int64("max_bytes", b.rc.MaxBytes))
		b.endHeld("overflowed")
	case over:
		// A client that stopped polling: it is gone.
		b.goAway("client stopped polling")
	}
}

// resumeInPlace takes back a held session whose polling client returned
// on the same Engine.IO session (its network came back before it gave
// up): the queue holds everything since, in order. It reports whether
// the session goes on.
func (b *bridge) resumeInPlace(sid string) bool {
	b.mu.Lock()
	if b.ended || b.current != sid || b.ws != nil {
		b.mu.Unlock()
		return false
	}
	if b.away && (b.closed || b.closing || b.probing || b.upgraded) {
		b.mu.Unlock()
		return false
	}
	if !b.away {
		b.mu.Unlock()
		return true
	}
	b.away = false
	b.awayT.Stop()
	for _, sp := range b.spaces {
		// A namespace still waiting for a recovery when the client
		// went away goes on waiting.
		sp.held = sp.recoverable && !sp.wasLive
	}
	kept := b.log[:0]
	for _, e := range b.log {
		if sp := b.spaces[e.ns]; sp != nil && sp.held {
			kept = append(kept, e) // for its namespace's replay
			continue
		}
		if e.seq == 0 && e.ackID == "" && e.held {
			b.logBytes -= e.size // delivered with the queue
			continue
		}
		e.held = false
		kept = append(kept, e)
	}
	b.log = kept
	b.workerAt = -1
	b.heartT.Stop()
	b.heartT = time.AfterFunc(b.interval, b.ping)
	b.mu.Unlock()
	recoveryHeld(-1)
	return true
}

func (b *bridge) wakeLocked() {
	close(b.wake)
	b.wake = make(chan struct{})
}

// fromClient takes one packet of the client's, from a poll body or its
// WebSocket, and passes it to the worker as the relay would. An error
// ends the session: the packet broke a rule.
func (b *bridge) fromClient(p eioPacket) error {
	if p.binary {
		if err := b.limit(); err != nil {
			return err
		}
		if !b.fromC.Binary() {
			return nil
		}
		return b.toWorker(p)
	}
	if len(p.data) == 0 {
		return errors.New("empty packet")
	}
	switch engineio.PacketType(p.data[0]) {
	case engineio.Pong:
		b.pong()
		return nil
	case engineio.Close:
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		b.goAway("client closed its session")
		return nil
	case engineio.Ping, engineio.Noop, engineio.Upgrade:
		return nil
	}
	if err := b.limit(); err != nil {
		return err
	}
	msg := p.data
	if pkt, err := socketio.Read(msg, false); err == nil && pkt.Kind == socketio.Message && pkt.Type == socketio.Connect {
		pid, offset, stripped, found, rerr := socketio.RecoveryOf(msg)
		if rerr != nil {
			return rerr
		}
		if found {
			if b.recoverConnect(string(pkt.Namespace), pid, offset) {
				return nil
			}
			msg = stripped
		}
	}
	if pkt, err := socketio.Read(msg, false); err == nil && pkt.Kind == socketio.Message && pkt.Type == socketio.Connect {
		// A new socket for a namespace whose socket is still held (its
		// recovery was refused, or not asked for): the held one ends at
		// the worker first, so that the worker's answer reaches the
		// client.
		b.giveUp(string(pkt.Namespace))
	}
	out := msg
	if b.fromC.Peek(msg[:min(len(msg), b.fromC.PeekLen)]) {
		var err error
		if out, err = b.fromC.Rewrite(msg); err != nil {
			return err
		}
		if out == nil {
			return nil
		}
	}
	if pkt, err := socketio.Read(out, false); err == nil && pkt.Kind == socketio.Message && (pkt.Type == socketio.Ack || pkt.Type == socketio.BinaryAck) && pkt.ID != nil {
		b.acked(string(pkt.Namespace), string(pkt.ID))
	} else if err == nil && pkt.Kind == socketio.Message && pkt.Type == socketio.Disconnect {
		// The client left the namespace: nothing of it is recovered.
		b.mu.Lock()
		delete(b.spaces, string(pkt.Namespace))
		b.mu.Unlock()
	}
	return b.toWorker(eioPacket{data: out})
}

// forClient is what of the queue q the client may have as id, the user of
// the request that takes it: data of a namespace the user may no longer
// use (a role lost, a cookie of another role since) is dropped with its
// attachments, and the namespace withdrawn on both sides, as on an
// unbridged poll.
func (b *bridge) forClient(q []eioPacket, id identity.Identity) []eioPacket {
	pol := b.pol()
	if !pol.hasRules() {
		return q
	}
	out := q[:0:0]
	skip := int64(0)
	for _, p := range q {
		if p.binary {
			if skip > 0 {
				skip--
				continue
			}
			out = append(out, p)
			continue
		}
		skip = 0
		if head, ok := socketio.ReadWorker(p.data, true); ok && head.CarriesData() && pol.admit(id, string(head.Namespace)) != nil {
			skip = head.Attachments
			continue
		}
		out = append(out, p)
	}
	for _, ns := range b.h.withdrawNamespaces(pol, b.openSID, id, b.client) {
		b.withdraw(ns)
		out = append(out, eioPacket{data: disconnectPacket(ns)})
	}
	return out
}

// giveUp ends the held socket of namespace ns at the worker, and forgets
// what was kept for it. Nothing happens when ns is not held, or while the
// whole session is.
func (b *bridge) giveUp(ns string) {
	b.mu.Lock()
	sp := b.spaces[ns]
	if sp == nil || !sp.held || b.away {
		b.mu.Unlock()
		return
	}
	delete(b.spaces, ns)
	b.dropEntries(func(e *entry) bool { return e.ns == ns })
	b.mu.Unlock()
	b.h.registry.left(b.openSID, ns)
	_ = b.toWorker(eioPacket{data: disconnectPacket(ns)})
}

// dropEntries removes the log entries drop chooses. Called with b.mu held.
func (b *bridge) dropEntries(drop func(*entry) bool) {
	kept := b.log[:0]
	for i := range b.log {
		e := b.log[i]
		if drop(&e) {
			b.logBytes -= e.size
			if b.workerAt == i {
				b.workerAt = -1
			}
			continue
		}
		if b.workerAt == i {
			b.workerAt = len(kept)
		}
		kept = append(kept, e)
	}
	clear(b.log[len(kept):])
	b.log = kept
}

// ping is the edge's heartbeat with the client, as an Engine.IO server's:
// a ping every interval, a pong due within timeout.
func (b *bridge) ping() {
	b.mu.Lock()
	if b.ended || b.away {
		b.mu.Unlock()
		return
	}
	b.pongDue = true
	b.pingMark = b.seq
	b.heartT = time.AfterFunc(b.timeout, b.pongMissed)
	b.mu.Unlock()
	b.toClient(eioPacket{data: []byte{byte(engineio.Ping)}})
}

func (b *bridge) pongMissed() {
	b.mu.Lock()
	due := b.pongDue && !b.away && !b.ended
	b.mu.Unlock()
	if due {
		b.goAway("ping timeout")
	}
}

// pong notes the client's answer: what it was sent before the ping has
// arrived, so the log need not keep it.
func (b *bridge) pong() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.pongDue || b.ended {
		return
	}
	b.pongDue = false
	b.heartT.Stop()
	b.heartT = time.AfterFunc(b.interval, b.ping)
	kept := b.log[:0]
	for i, e := range b.log {
		if !e.held && e.seq != 0 && e.seq <= b.pingMark {
			if sp := b.spaces[e.ns]; sp != nil && e.seq > sp.floor {
				sp.floor = e.seq
			}
			b.logBytes -= e.size
			if b.workerAt == i {
				b.workerAt = -1
			}
			continue
		}
		if b.workerAt == i {
			b.workerAt = len(kept)
		}
		kept = append(kept, e)
	}
	b.log = kept
}

// clientGone is called when the client's WebSocket ws failed or closed.
func (b *bridge) clientGone(ws *clientSocket, err error) {
	b.mu.Lock()
	current := b.ws == ws
	b.mu.Unlock()
	if current {
		b.goAway("client connection closed")
	}
}

// goAway is called when the client is gone. With a recoverable
// namespace connected, the worker's session is held for the window;
// otherwise it ends.
func (b *bridge) goAway(why string) {
	b.mu.Lock()
	if b.ended || b.away {
		b.mu.Unlock()
		return
	}
	recoverable := false
	for _, sp := range b.spaces {
		recoverable = recoverable || sp.recoverable
	}
	if !recoverable {
		b.mu.Unlock()
		b.end(why, websocket.CloseGoingAway)
		return
	}
	// Held: the window runs. The queue stays, for a polling client
	// that comes back on the same session (resumeInPlace); namespaces
	// that do not recover stay connected at the worker until the client
	// is back on a new session (adopt) or the window ends.
	b.away, b.awayAt = true, time.Now()
	for _, sp := range b.spaces {
		if sp.recoverable {
			sp.wasLive = !sp.held
			sp.held = true
		}
	}
	ws := b.ws
	b.ws = nil
	b.heartT.Stop()
	b.pongDue = false
	b.awayT = time.AfterFunc(time.Duration(b.rc.Window), func() { b.endHeld("expired") })
	b.wakeLocked()
	b.mu.Unlock()
	if ws != nil {
		ws.close(websocket.CloseGoingAway, "")
	}
	recoveryHeld(1)
	if ce := b.h.logger.Check(zapcore.DebugLevel, "Socket.IO client away; session held"); ce != nil {
		ce.Write(zap.String("upstream", b.up.addr), zap.String("remote_ip", b.client.IP), zap.String("why", why),
			zap.Duration("window", time.Duration(b.rc.Window)))
	}
}

// servesSID reports whether sid is the client's current Engine.IO session.
func (b *bridge) servesSID(sid string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.current == sid
}

func (b *bridge) isAway() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.away && !b.ended
}

// endHeld ends a held session: the window passed or its log overflowed.
func (b *bridge) endHeld(result string) {
	b.mu.Lock()
	if b.ended || !b.away || b.closing {
		b.mu.Unlock()
		return
	}
	b.closing = true
	since := b.awayAt
	b.mu.Unlock()
	countRecovery(result, 0)
	if ce := b.h.logger.Check(zapcore.InfoLevel, "held Socket.IO session ended: "+result); ce != nil {
		ce.Write(zap.String("upstream", b.up.addr), zap.String("remote_ip", b.client.IP), zap.Duration("away", heldSince(since)))
	}
	b.end("session "+result, websocket.CloseGoingAway)
}

// end closes the session on both sides, once.
func (b *bridge) end(reason string, code int) {
	b.mu.Lock()
	if b.ended {
		b.mu.Unlock()
		return
	}
	b.ended = true
	wasAway := b.away
	ws := b.ws
	b.ws = nil
	if b.awayT != nil {
		b.awayT.Stop()
	}
	b.heartT.Stop()
	if b.spacesT != nil {
		b.spacesT.Stop()
	}
	close(b.endedCh)
	b.wakeLocked()
	sids := b.sids
	b.log, b.queue = nil, nil
	b.mu.Unlock()
	if wasAway {
		recoveryHeld(-1)
	}
	if ws != nil {
		if code == websocket.CloseGoingAway {
			// The session ends here, not the client's fault: the
			// Engine.IO close packet makes it reconnect at once, as
			// the relay's farewell does. A rule the client broke
			// (1008, 1009) is said by the close frame alone, which
			// socket.io-client and the browser module read.
			_ = ws.write(eioPacket{data: []byte{byte(engineio.Close)}})
		}
		ws.close(code, reason)
	}
	b.wmu.Lock()
	_ = b.conn.SetWriteDeadline(time.Now().Add(controlWait))
	_ = b.conn.WriteMessage(websocket.TextMessage, []byte{byte(engineio.Close)})
	_ = b.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(controlWait))
	b.wmu.Unlock()
	b.conn.Close()
	b.unwatch()
	b.h.registry.unrelay(&b.rs)
	b.h.registry.relayEnded(b.openSID, true, time.Now())
	b.h.registry.closed(b.openSID)
	bridges.remove(b, sids...)
}

// --- recovery ---

// recoverConnect answers a client's CONNECT to ns that carries a pid.
// It returns true when the pid's held session was recovered: the client's
// session now leads to it, the CONNECT reply and the missed packets are
// on their way. Otherwise the CONNECT goes on, stripped of pid and
// offset, as a new connection.
func (b *bridge) recoverConnect(ns, pid, offset string) bool {
	refuse := func(why string) bool {
		countRecovery("refused", 0)
		security.LogClient(b.h.security, "socketio_proxy", security.RecoveryRefused,
			"Socket.IO reconnection not recovered: "+why+"; a new session", b.client, security.Fields{UserID: b.userID})
		return false
	}
	id, err := b.h.pids.open(pid, ns)
	if err != nil {
		return refuse(err.Error())
	}
	held := bridges.byPID(id)
	if held == nil {
		return refuse("no session held for this pid (its window passed, or it ended)")
	}
	if d := b.pol().admit(b.live.recent(), ns); d != nil {
		return refuse("the namespace's rule no longer admits the user")
	}
	if held.owner != b.owner || held.userID != b.userID {
		return refuse("the session was opened by another user or from another origin")
	}
	off, err := parseOffset(offset)
	if err != nil {
		return refuse(err.Error())
	}
	if held != b {
		if !held.adopt(b, ns, off) {
			return refuse("the held session cannot take this connection over")
		}
		return true
	}
	return b.resume(ns, off)
}

func parseOffset(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || strconv.FormatUint(n, 10) != s {
		return 0, errors.New("offset is not one this edge sent")
	}
	return n, nil
}

// adopt makes the held session b serve the client of the new session nb,
// which has connected no namespace at its worker yet; nb ends.
func (b *bridge) adopt(nb *bridge, ns string, off uint64) bool {
	// Adoption is the one place two bridges are locked at once; one at
	// a time, so that two sessions presenting each other's pid cannot
	// lock them in opposite orders.
	adoptMu.Lock()
	defer adoptMu.Unlock()
	b.mu.Lock()
	nb.mu.Lock()
	sp := b.spaces[ns]
	// Only a held session is taken over: a live one belongs to the
	// client on it (the Node server likewise restores only sessions
	// whose client left).
	ok := b.away && !b.closing && !b.ended && !nb.ended && len(nb.spaces) == 0 && !nb.spliced &&
		sp != nil && sp.held && off >= sp.floor && off <= b.seq
	if !ok {
		nb.mu.Unlock()
		b.mu.Unlock()
		return false
	}
	wasAway := b.away
	if b.awayT != nil {
		b.awayT.Stop()
	}
	b.away = false
	b.spliced, nb.spliced = true, true
	// The client's transport moves over: its sid, and its WebSocket or
	// its waiting poll.
	b.sids = append(b.sids, nb.sids...)
	for _, sid := range nb.sids {
		bridges.route(sid, b)
	}
	nb.sids = nil
	b.current = nb.current
	b.ws, nb.ws = nb.ws, nil
	if b.ws != nil {
		b.ws.b.Store(b)
	}
	// The client's rights are those of its new connection's cookie.
	b.live.rebase(*nb.live.at.Load())
	b.closed, b.probing, b.upgraded = false, nb.probing, nb.upgraded
	// Namespaces the client does not connect again within what is left
	// of the window are given up.
	left := time.Duration(b.rc.Window) - time.Since(b.awayAt)
	if b.spacesT != nil {
		b.spacesT.Stop()
	}
	b.spacesT = time.AfterFunc(max(left, 0), func() {
		b.mu.Lock()
		var held []string
		for ns, sp := range b.spaces {
			if sp.held {
				held = append(held, ns)
			}
		}
		b.mu.Unlock()
		for _, ns := range held {
			b.giveUp(ns)
		}
	})
	b.queue, b.queued = nb.queue, nb.queued
	var gone []string
	for ns, sp := range b.spaces {
		if !sp.recoverable {
			gone = append(gone, ns)
			delete(b.spaces, ns)
		}
	}
	b.pongDue = false
	b.heartT.Stop()
	b.heartT = time.AfterFunc(b.interval, b.ping)
	nb.wakeLocked()
	nb.mu.Unlock()
	b.mu.Unlock()
	if wasAway {
		recoveryHeld(-1)
	}
	nb.end("session recovered by another", websocket.CloseNormalClosure)
	for _, g := range gone {
		b.h.registry.left(b.openSID, g)
		_ = b.toWorker(eioPacket{data: disconnectPacket(g)})
	}
	return b.resume(ns, off)
}

// resume sends the client the CONNECT reply of its recovered namespace
// (with the same pid, so socket.recovered is true) and the packets it
// missed, in order.
func (b *bridge) resume(ns string, off uint64) bool {
	b.mu.Lock()
	sp := b.spaces[ns]
	if b.ended || sp == nil || !sp.held || off < sp.floor || off > b.seq {
		b.mu.Unlock()
		return false
	}
	sp.held = false
	send := []eioPacket{{data: sp.reply}}
	// Events arrive in order: the client processed everything up to
	// the event of its offset, so an event asking for an
	// acknowledgement (which carries no offset) before it arrived too.
	// One after it is sent again: delivered at least once, so that
	// the worker gets the acknowledgement a lost connection took.
	received := -1
	for i, e := range b.log {
		if e.ns == ns && e.seq != 0 && e.seq <= off {
			received = i
		}
	}
	kept := b.log[:0:0]
	for i, e := range b.log {
		switch {
		case e.ns != ns:
			kept = append(kept, e)
		case e.seq > off || (e.seq == 0 && i > received && (e.held || e.ackID != "")):
			send = append(send, e.pkts...)
			if e.seq != 0 || e.ackID != "" {
				e.held = false
				kept = append(kept, e)
			} else {
				b.logBytes -= e.size
			}
		default:
			b.logBytes -= e.size
		}
	}
	b.log = kept
	b.workerAt = -1
	// The replay goes out before anything the worker sends from now on:
	// into the queue, or onto the WebSocket whose writer is taken
	// before the namespace is live again.
	var err error
	ws := b.ws
	if ws == nil {
		for _, p := range send {
			b.queue = append(b.queue, p)
			b.queued += p.size()
		}
		b.wakeLocked()
		b.mu.Unlock()
	} else {
		ws.mu.Lock()
		b.mu.Unlock()
		for _, p := range send {
			if err = ws.writeLocked(p); err != nil {
				break
			}
		}
		ws.mu.Unlock()
	}
	if err != nil {
		b.clientGone(ws, err)
	}
	countRecovery("recovered", len(send)-1)
	if ce := b.h.logger.Check(zapcore.DebugLevel, "Socket.IO session recovered"); ce != nil {
		ce.Write(zap.String("upstream", b.up.addr), zap.String("namespace", ns), zap.Int("replayed", len(send)-1),
			zap.String("remote_ip", b.client.IP))
	}
	return true
}

// --- Engine.IO helpers ---

// encodePoll writes packets as a long-polling payload.
func encodePoll(pkts []eioPacket) []byte {
	var out []byte
	for i, p := range pkts {
		if i > 0 {
			out = append(out, engineio.RecordSeparator)
		}
		if p.binary {
			out = append(out, 'b')
			out = base64.StdEncoding.AppendEncode(out, p.data)
		} else {
			out = append(out, p.data...)
		}
	}
	return out
}

// openFor rewrites the worker's open packet for the client: the sealed
// sid, and the upgrades the client's transport may make.
func openFor(open []byte, sid string, upgrades []string) ([]byte, error) {
	var m map[string]json.RawMessage
	if len(open) == 0 || open[0] != byte(engineio.Open) {
		return nil, errors.New("not an open packet")
	}
	if err := json.Unmarshal(open[1:], &m); err != nil {
		return nil, err
	}
	m["sid"], _ = json.Marshal(sid)
	if upgrades == nil {
		upgrades = []string{}
	}
	m["upgrades"], _ = json.Marshal(upgrades)
	js, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return append([]byte{byte(engineio.Open)}, js...), nil
}
