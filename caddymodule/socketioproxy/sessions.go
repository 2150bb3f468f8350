package socketioproxy

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/flaskedge/flaskedge/internal/socketio"
)

// registry tracks the Engine.IO registry live on this edge, so that the
// least_sessions policy sees each worker's load. A polling session has no
// connection to watch, so it counts as live until it sends a close packet,
// its worker forgets it, or it stays silent longer than its ping interval
// and timeout allow.
type registry struct {
	mu   sync.Mutex
	live map[string]*session // by the sid the client sees
	stop chan struct{}       // ends the sweeper

	// draining is cancelled when the process begins to exit: waiting
	// polls then get an Engine.IO close packet, so their clients
	// reconnect elsewhere instead of seeing their connections reset.
	// Relayed WebSockets are closed by drain, see drain.go.
	draining   context.Context
	drainPoll  context.CancelFunc
	drainOnce  sync.Once
	relays     map[*relayStop]struct{}       // the live WebSocket relays, under mu
	polls      map[*waitingPoll]struct{}     // the parked GETs, under mu
	watches    map[context.Context]*ctxWatch // what ends the relays of a worker, under mu (see relaying)
	stopping   bool                          // drain began, under mu
	relaysGone chan struct{}                 // closed when the last relay ends after drain, under mu

	// requests counts the Engine.IO requests in flight per client IP,
	// under mu.
	requests map[string]int
}

type session struct {
	up        *upstreamState
	seat      *seat // its place in up's live count
	lastSeen  time.Time
	idle      time.Duration // silence after which a polling session is gone
	websocket bool          // a relay runs: live until it ends
	// getting and posting are the long-polling requests in flight
	// through this edge: Engine.IO allows one GET and one POST at a time.
	getting, posting *flight
	// endPoll ends the GET waiting at the worker, with a cause (see
	// rateClosed); nil when none waits.
	endPoll context.CancelCauseFunc
	// owed are DISCONNECTs the worker has been sent for this session
	// and the client not yet (a POST cannot carry them back).
	owed [][]byte
	// namespaces the worker has connected the session to (its CONNECT
	// replies), less those since disconnected by either side.
	namespaces []string
	// granted are the namespaces the worker connected the session to,
	// less those the worker or the edge disconnected: what a withdrawal
	// must take. A client's own DISCONNECT does not count here, as
	// python-socketio may not have read it as one (see attachments).
	granted []string
	// client and worker follow the binary attachments python-socketio
	// and socket.io-client are waiting for on polling.
	client, worker attachments
	// cutAt, once set, is when a polling session of a drained worker is
	// let go (see spreadCut).
	cutAt time.Time
	// overflow is set once the worker connected the session to more
	// namespaces than granted can hold: a withdrawal could miss one, so
	// the session ends instead (see mustEnd).
	overflow bool
}

// defaultIdle is python-engineio's pingInterval + pingTimeout with a little
// grace, for sessions whose open packet this edge did not see.
const defaultIdle = 50 * time.Second

// sweepInterval is how often silent polling sessions are looked for.
const sweepInterval = 5 * time.Second

// exitCheckInterval is how often the registry looks whether the process
// is exiting. Caddy offers no notice before its servers start waiting
// for their active requests (OnExit runs after), and a long-poll is an
// active request, so the registry watches caddy.Exiting instead.
const exitCheckInterval = 50 * time.Millisecond

func newRegistry() *registry {
	s := &registry{live: make(map[string]*session), stop: make(chan struct{}), relays: make(map[*relayStop]struct{}), polls: make(map[*waitingPoll]struct{}), watches: make(map[context.Context]*ctxWatch),
		requests: make(map[string]int)}
	s.draining, s.drainPoll = context.WithCancel(context.Background())
	settler := newMemorySettler(func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.live)
	})
	go func() {
		sweep := time.NewTicker(sweepInterval)
		defer sweep.Stop()
		exit := time.NewTicker(exitCheckInterval)
		defer exit.Stop()
		settle := time.NewTicker(settleInterval)
		defer settle.Stop()
		for {
			select {
			case <-s.stop:
				return
			case now := <-sweep.C:
				s.sweep(now)
			case <-settle.C:
				settler.settle()
			case <-exit.C:
				if caddy.Exiting() {
					s.drain()
					exit.Stop()
				}
			}
		}
	}()
	return s
}

// Destruct stops the sweeper once no config uses the registry. When the
// process exits, it also drains what is left and waits for the relays to
// say goodbye (see awaitRelays), so that the process does not exit under
// them.
func (s *registry) Destruct() error {
	close(s.stop)
	if caddy.Exiting() {
		s.drain()
		s.awaitRelays()
	}
	return nil
}

// opened records a session whose handshake this edge relayed, taking
// over the handshake's seat.
func (s *registry) opened(sid string, st *seat, idle time.Duration, now time.Time) {
	s.mu.Lock()
	if old, ok := s.live[sid]; ok {
		old.seat.free()
	}
	s.live[sid] = &session{up: st.up, seat: st, lastSeen: now, idle: idle}
	s.mu.Unlock()
}

// seen records activity of a session, which may have been opened through
// another edge.
func (s *registry) seen(sid string, up *upstreamState, now time.Time) {
	s.mu.Lock()
	s.touch(sid, up, now)
	s.mu.Unlock()
}

// touch is seen under mu; it returns the session.
func (s *registry) touch(sid string, up *upstreamState, now time.Time) *session {
	if ss, ok := s.live[sid]; ok {
		ss.lastSeen = now
		return ss
	}
	ss := &session{up: up, seat: takeSeat(up), lastSeen: now, idle: defaultIdle}
	s.live[sid] = ss
	return ss
}

// flight is a long-polling request in flight.
type flight struct {
	// ctx is the request's context, or its waitingPoll (under
	// registry.mu): its Err is not nil once the client has gone.
	ctx interface{ Err() error }
	// done is closed when the request ends; made (under registry.mu)
	// by the first request that waits for it, rarely: a waiting GET
	// holds no channel.
	done chan struct{}
}

// overlapWait bounds how long a request waits for the one before it,
// whose client has gone, to end: a client that lost a keep-alive
// connection sends the request again at once, before the edge has seen
// the first one end.
const overlapWait = 2 * time.Second

// poll records a long-polling request of a session beginning: false
// when the session already has one of the same method in flight through
// this edge, which Engine.IO does not allow (unless that one's client
// has gone: then it waits for it to end). done ends it.
func (s *registry) poll(ctx context.Context, sid string, up *upstreamState, post bool, now time.Time) (ok bool, done func()) {
	deadline := time.NewTimer(overlapWait)
	defer deadline.Stop()
	s.mu.Lock()
	for {
		ss := s.touch(sid, up, now)
		slot := &ss.getting
		if post {
			slot = &ss.posting
		}
		prev := *slot
		if prev == nil {
			f := &flight{ctx: ctx}
			*slot = f
			s.mu.Unlock()
			return true, func() {
				s.mu.Lock()
				if *slot == f {
					*slot = nil
				}
				done := f.done
				s.mu.Unlock()
				if done != nil {
					close(done)
				}
			}
		}
		if prev.ctx.Err() == nil {
			s.mu.Unlock()
			return false, nil
		}
		if prev.done == nil {
			prev.done = make(chan struct{})
		}
		done := prev.done
		s.mu.Unlock()
		select {
		case <-done:
		case <-deadline.C:
			return false, nil
		case <-ctx.Done():
			return false, nil
		}
		s.mu.Lock()
	}
}

// parkedGet has the session's GET in flight followed by ctx, done once
// its client has gone, instead of its request's context, which ends when
// the handler returns with the GET parked (see waitingPoll).
func (s *registry) parkedGet(sid string, ctx interface{ Err() error }) {
	s.mu.Lock()
	if ss, ok := s.live[sid]; ok && ss.getting != nil {
		ss.getting.ctx = ctx
	}
	s.mu.Unlock()
}

// waiting records how to end the session's GET while it waits at the
// worker; the function returned forgets it once the worker answered.
func (s *registry) waiting(sid string, end context.CancelCauseFunc) (forget func()) {
	s.mu.Lock()
	ss, ok := s.live[sid]
	if ok {
		ss.endPoll = end
	}
	s.mu.Unlock()
	return func() {
		if ok {
			s.mu.Lock()
			ss.endPoll = nil
			s.mu.Unlock()
		}
	}
}

// endPoll ends the session's waiting GET, if any, with cause.
func (s *registry) endPoll(sid string, cause error) {
	s.mu.Lock()
	var end context.CancelCauseFunc
	if ss, ok := s.live[sid]; ok {
		end, ss.endPoll = ss.endPoll, nil
	}
	s.mu.Unlock()
	if end != nil {
		end(cause)
	}
}

// relayStarted records that a WebSocket relay now carries the session: it
// stays live until the relay ends.
func (s *registry) relayStarted(sid string, up *upstreamState, now time.Time) {
	s.mu.Lock()
	s.touch(sid, up, now).websocket = true
	s.mu.Unlock()
}

// relayEnded records the end of a WebSocket relay. A session whose
// client completed the upgrade (or that began on the WebSocket) ended
// with it; one whose upgrade never completed lives on in polling.
func (s *registry) relayEnded(sid string, over bool, now time.Time) {
	if over {
		s.closed(sid)
		return
	}
	s.mu.Lock()
	if ss, ok := s.live[sid]; ok {
		ss.websocket = false
		ss.lastSeen = now
	}
	s.mu.Unlock()
}

// owe keeps DISCONNECTs for the session's next long-poll.
func (s *registry) owe(sid string, packets ...[]byte) {
	s.mu.Lock()
	if ss, ok := s.live[sid]; ok {
		for _, p := range packets {
			if len(ss.owed) < maxNamespacesPerSession && !slices.ContainsFunc(ss.owed, func(q []byte) bool { return bytes.Equal(p, q) }) {
				ss.owed = append(ss.owed, p)
			}
		}
	}
	s.mu.Unlock()
}

// takeOwed returns and forgets the DISCONNECTs owed to the client.
func (s *registry) takeOwed(sid string) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.live[sid]
	if !ok {
		return nil
	}
	owed := ss.owed
	ss.owed = nil
	return owed
}

// attachmentsOf returns the attachment state of a polling session.
func (s *registry) attachmentsOf(sid string) (client, worker attachments) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss, ok := s.live[sid]; ok {
		return ss.client, ss.worker
	}
	return attachments{}, attachments{}
}

// setClientAttachments and setWorkerAttachments store them back.
func (s *registry) setClientAttachments(sid string, a attachments) {
	s.mu.Lock()
	if ss, ok := s.live[sid]; ok {
		ss.client = a
	}
	s.mu.Unlock()
}

func (s *registry) setWorkerAttachments(sid string, a attachments) {
	s.mu.Lock()
	if ss, ok := s.live[sid]; ok {
		ss.worker = a
	}
	s.mu.Unlock()
}

// overflowed reports whether session sid holds namespaces the registry
// could not remember.
func (s *registry) overflowed(sid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.live[sid]
	return ok && ss.overflow
}

// grantedTo returns the namespaces a withdrawal may have to take from
// session sid.
func (s *registry) grantedTo(sid string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss, ok := s.live[sid]; ok {
		return slices.Clone(ss.granted)
	}
	return nil
}

// request counts an Engine.IO request of client ip beginning: false when
// the client already has max in flight. done ends it.
func (s *registry) request(ip string, max int) (ok bool, done func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.requests[ip] >= max {
		return false, nil
	}
	s.requests[ip]++
	metrics.inFlight.Inc()
	return true, func() {
		metrics.inFlight.Dec()
		s.mu.Lock()
		if s.requests[ip]--; s.requests[ip] <= 0 {
			delete(s.requests, ip)
		}
		s.mu.Unlock()
	}
}

// closed forgets a session.
func (s *registry) closed(sid string) {
	s.mu.Lock()
	if ss, ok := s.live[sid]; ok {
		delete(s.live, sid)
		ss.seat.free()
	}
	s.mu.Unlock()
}

// sweep forgets the polling sessions that have been silent too long.
func (s *registry) sweep(now time.Time) {
	s.mu.Lock()
	for sid, ss := range s.live {
		if !ss.websocket && now.Sub(ss.lastSeen) > ss.idle {
			delete(s.live, sid)
			ss.seat.free()
		}
	}
	s.mu.Unlock()
}

// each calls fn for every live session.
func (s *registry) each(fn func(up *upstreamState, websocket bool, namespaces []string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.live {
		fn(ss.up, ss.websocket, ss.namespaces)
	}
}

// maxNamespacesPerSession bounds what one session can make the edge
// remember (an app that accepts every namespace lets a client connect
// any number).
const maxNamespacesPerSession = 32

// joined records that the worker connected session sid to namespace ns.
func (s *registry) joined(sid, ns string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.live[sid]
	if !ok {
		return
	}
	for _, list := range []*[]string{&ss.namespaces, &ss.granted} {
		if slices.Contains(*list, ns) {
			continue
		}
		if len(*list) < maxNamespacesPerSession {
			*list = append(*list, ns)
		} else if list == &ss.granted {
			ss.overflow = true
		}
	}
}

// left records that the worker (or the edge) disconnected session sid
// from namespace ns.
func (s *registry) left(sid, ns string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss, ok := s.live[sid]; ok {
		ss.namespaces = slices.DeleteFunc(ss.namespaces, func(n string) bool { return n == ns })
		ss.granted = slices.DeleteFunc(ss.granted, func(n string) bool { return n == ns })
	}
}

// clientLeft records a client's DISCONNECT of namespace ns, which only
// the live view counts.
func (s *registry) clientLeft(sid, ns string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss, ok := s.live[sid]; ok {
		ss.namespaces = slices.DeleteFunc(ss.namespaces, func(n string) bool { return n == ns })
	}
}

// follow updates session sid's namespaces from a message the worker sent,
// or its first bytes (whole false): a CONNECT reply joins, a DISCONNECT
// leaves; the answers to the edge's denial CONNECTs do neither.
func (s *registry) follow(sid string, p []byte, whole bool) {
	h, ok := socketio.ReadWorker(p, whole)
	if !ok || socketio.IsDenialReply(p) {
		return
	}
	switch h.Type {
	case socketio.Connect:
		s.joined(sid, string(h.Namespace))
	case socketio.Disconnect:
		s.left(sid, string(h.Namespace))
	}
}
