package socketioproxy

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/flaskedge/flaskedge/internal/engineio"
	"github.com/flaskedge/flaskedge/internal/identity"
	"github.com/flaskedge/flaskedge/internal/security"
	"github.com/flaskedge/flaskedge/internal/socketio"
)

// A Socket.IO session outlives the request that opened it. Its user is
// fixed when it opens (see sticky.Owner), but what the user may do is
// not: with whoami the roles live in the app's database, a cookie passes
// max_age, and a reload changes the rules. So the namespaces a session is
// connected to are checked again, and those it may no longer use are
// withdrawn: the worker gets their DISCONNECTs as if the client had sent
// them, and the client gets them as if the worker had, which
// socket.io-client reports as a disconnect by the server ("io server
// disconnect") and does not retry.
//
// A WebSocket session is checked every roleCheckInterval and when its
// cookie expires; a polling session on each long-poll, which comes at
// least every pingInterval. Either way a CONNECT is decided with roles no
// older than whoami's TTL.

// roleCheckInterval is how often a live WebSocket session's user is
// checked again. whoami's cache answers most checks; a role withdrawn
// in the app's database is acted on within whoami_ttl plus this.
const roleCheckInterval = 5 * time.Second

// disconnectPacket is the Engine.IO message carrying the Socket.IO
// DISCONNECT of namespace ns.
func disconnectPacket(ns string) []byte {
	if ns == "/" {
		return []byte("41")
	}
	return []byte("41" + ns + ",")
}

// mustEnd reports whether session sid must end rather than have
// namespaces withdrawn: the worker connected it to more namespaces than
// the registry remembers, and pol denies id some namespace, which may be
// one of those. It logs why.
func (h *Handler) mustEnd(pol *policy, sid string, id identity.Identity, client security.Client) bool {
	if !pol.hasRules() || !h.registry.overflowed(sid) || !pol.deniesAny(id) {
		return false
	}
	security.Refused(security.ReasonNamespace)
	security.LogClient(h.security, "socketio_proxy", security.NamespaceDenied,
		"session connected to more namespaces than the edge tracks ("+strconv.Itoa(maxNamespacesPerSession)+"); ended at a withdrawal",
		client, security.Fields{UserID: id.UserID})
	return true
}

// withdrawNamespaces finds the namespaces the worker granted session sid
// that id may no longer use under pol, forgets them, and logs each.
func (h *Handler) withdrawNamespaces(pol *policy, sid string, id identity.Identity, client security.Client) []string {
	var out []string
	for _, ns := range h.registry.grantedTo(sid) {
		d := pol.admit(id, ns)
		if d == nil {
			continue
		}
		h.registry.left(sid, ns)
		h.logWithdrawn(d, id, client)
		out = append(out, ns)
	}
	return out
}

// withdraw is withdrawNamespaces, returning their DISCONNECT packets.
func (h *Handler) withdraw(pol *policy, sid string, id identity.Identity, client security.Client) [][]byte {
	var out [][]byte
	for _, ns := range h.withdrawNamespaces(pol, sid, id, client) {
		out = append(out, disconnectPacket(ns))
	}
	return out
}

// withdrawPolling withdraws, on a long-poll GET, the namespaces the
// session may no longer use: the worker gets their DISCONNECTs in a POST
// of the edge's own, and the GET is answered with them at once, together
// with those a POST's packets gave away (see owe). It reports whether it
// answered the GET.
func (h *Handler) withdrawPolling(w http.ResponseWriter, c *call) bool {
	if !c.pol.hasRules() {
		return false
	}
	if h.mustEnd(c.pol, c.sid, c.id.At(time.Now()), c.client) {
		h.endPollingSession(w, c)
		return true
	}
	packets := h.withdraw(c.pol, c.sid, c.id.At(time.Now()), c.client)
	if len(packets) > 0 {
		if client, _ := h.registry.attachmentsOf(c.sid); client.pending > 0 {
			h.endPollingSession(w, c)
			return true
		}
		h.tellWorker(c, bytes.Join(packets, []byte{engineio.RecordSeparator}))
	}
	packets = append(h.registry.takeOwed(c.sid), packets...)
	if len(packets) == 0 {
		return false
	}
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(bytes.Join(packets, []byte{engineio.RecordSeparator}))
	return true
}

// endPollingSession ends a polling session from which namespaces must be
// withdrawn but cannot be: python-socketio awaits binary attachments of
// its client, which would swallow the DISCONNECT, or the session holds
// namespaces the edge does not know (see mustEnd). The worker gets the
// Engine.IO close packet, and the client, on this request, too.
func (h *Handler) endPollingSession(w http.ResponseWriter, c *call) {
	h.tellWorker(c, []byte{byte(engineio.Close)})
	h.registry.closed(c.sid)
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	if c.r.Method == http.MethodPost {
		engineio.WriteError(w, engineio.CodeSessionIDUnknown)
		return
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte{byte(engineio.Close)})
}

// tellWorker POSTs packets of the edge's own to the session's worker, as
// if the client had sent them. It does so even when the client has gone
// (it may have been answered already): the worker must still hear it.
func (h *Handler) tellWorker(c *call, payload []byte) {
	r := c.r
	out, err := http.NewRequestWithContext(context.WithoutCancel(r.Context()), http.MethodPost, c.up.httpURL(c.uri), bytes.NewReader(payload))
	if err == nil {
		if c.waiting != nil {
			out.Header = c.waiting.workerHeader()
		} else {
			out.Header = upstreamHeader(r, false)
		}
		out.Header.Set("Content-Type", "text/plain;charset=UTF-8")
		out.Header.Del("Content-Length")
		out.Host = r.Host
		var res *http.Response
		if res, err = c.up.poll.RoundTrip(out); err == nil {
			res.Body.Close()
		}
	}
	if err != nil {
		h.logger.Warn("could not tell the session's worker", zap.String("upstream", c.up.addr), zap.Error(err))
	}
}

// filterWorkerPoll drops, from a long-poll response, the worker's data
// packets for namespaces the session's user may no longer use (with their
// binary attachments, here or in a later response), puts one DISCONNECT
// in their place and tells the worker; nil when nothing changes.
func (h *Handler) filterWorkerPoll(c *call, body []byte) []byte {
	id := c.id.At(time.Now())
	_, att := h.registry.attachmentsOf(c.sid)
	parts := make([][]byte, 0, 4)
	var told []string
	changed := false
	_ = engineio.Packets(body, func(p []byte) error {
		if counts(p, false) {
			if drop, _ := att.next(); drop {
				changed = true
				return nil
			}
		}
		if head, ok := socketio.ReadWorker(p, true); ok && head.CarriesData() {
			ns := string(head.Namespace)
			if d := c.pol.admit(id, ns); d != nil {
				changed = true
				att.drop = head.Attachments
				if !slices.Contains(told, ns) {
					told = append(told, ns)
					h.logWithdrawn(d, id, c.client)
					h.registry.left(c.sid, ns)
					parts = append(parts, disconnectPacket(ns))
				}
				return nil
			}
		}
		parts = append(parts, p)
		return nil
	})
	h.registry.setWorkerAttachments(c.sid, attachments{drop: att.drop})
	if !changed {
		return nil
	}
	if len(told) > 0 {
		if client, _ := h.registry.attachmentsOf(c.sid); client.pending == 0 {
			var tell [][]byte
			for _, ns := range told {
				tell = append(tell, disconnectPacket(ns))
			}
			h.tellWorker(c, bytes.Join(tell, []byte{engineio.RecordSeparator}))
		} else {
			// The DISCONNECT would be swallowed as an attachment: end
			// the session at the worker; the client learns at its
			// next request.
			h.tellWorker(c, []byte{byte(engineio.Close)})
		}
	}
	return bytes.Join(parts, []byte{engineio.RecordSeparator})
}

// liveIdentity is the user of a WebSocket session, as of its upgrade,
// and the way to ask for it as of now.
type liveIdentity struct {
	at     atomic.Pointer[identity.Identity] // as of the latest request (see rebase)
	last   atomic.Pointer[identity.Identity] // what current last found
	logger *zap.Logger
}

func newLiveIdentity(at identity.Identity, logger *zap.Logger) *liveIdentity {
	l := new(liveIdentity)
	l.init(at, logger)
	return l
}

func (l *liveIdentity) init(at identity.Identity, logger *zap.Logger) {
	l.logger = logger
	l.at.Store(&at)
	l.last.Store(&at)
}

// rebase makes id, a newer request's user, the session's: a bridged
// session's polls and upgrade each carry the client's cookie as of now.
func (l *liveIdentity) rebase(id identity.Identity) {
	l.at.Store(&id)
	now := id.At(time.Now())
	l.last.Store(&now)
}

// current is the session's user as of now: with whoami, the app's answer
// no older than its TTL; anonymous once the cookie has expired, or when
// the app cannot say (fail closed).
func (l *liveIdentity) current() identity.Identity {
	id := *l.at.Load()
	if id.Refresh != nil {
		fresh, err := id.Refresh(context.Background())
		if err != nil {
			l.logger.Warn("whoami lookup for a live Socket.IO session failed; treating it as anonymous until it answers",
				zap.String("user_id", id.UserID), zap.Error(err))
			fresh = identity.Identity{}
		}
		id = fresh
	}
	id = id.At(time.Now())
	l.last.Store(&id)
	return id
}

// recent is the session's user as current last found it (at most
// roleCheckInterval ago), with the cookie's expiry applied.
func (l *liveIdentity) recent() identity.Identity { return l.last.Load().At(time.Now()) }

// watchRoles checks a live WebSocket session's namespaces every
// roleCheckInterval, and when its cookie expires, until stop is called:
// the user's roles may have changed, or a reload added a rule. The
// session is its filters' (see filters).
func (h *Handler) watchRoles(f *sessionFilters) (stop func()) {
	w := new(roleWatch)
	w.start(f)
	return w.stop
}

// roleWatch is watchRoles' state: its place on the role wheel.
type roleWatch struct {
	f *sessionFilters
	// Under roleChecks.mu: the watch's neighbours in its slot's list,
	// its slot (-1 while a check runs, or once stopped), and whether it
	// was stopped.
	prev, next *roleWatch
	slot       int32
	stopped    bool
}

func (w *roleWatch) start(f *sessionFilters) {
	w.f = f
	w.slot = -1
	w.schedule()
}

// schedule puts the watch on the wheel for its next check.
func (w *roleWatch) schedule() {
	next := roleCheckInterval
	if exp := w.f.live.at.Load().Expires; !exp.IsZero() {
		if until := time.Until(exp); until > 0 && until < next {
			next = until
		}
	}
	roleChecks.add(w, next)
}

func (w *roleWatch) check() {
	f := w.f
	if p := f.pol(); p.hasRules() {
		id := f.live.current()
		if f.h.mustEnd(p, f.sid, id, f.client) {
			f.inj.Close("session connected to more namespaces than the edge tracks")
			return
		}
		for _, ns := range f.h.withdrawNamespaces(p, f.sid, id, f.client) {
			f.toWorker(ns)
			if f.inj.ToClient(disconnectPacket(ns)) != nil {
				break
			}
		}
	}
	w.schedule()
}

// stop ends the checks.
func (w *roleWatch) stop() { roleChecks.remove(w) }

// roleTick is the role wheel's resolution: a check comes at most this
// late.
const roleTick = 100 * time.Millisecond

// roleSlots covers roleCheckInterval in ticks, the longest wait.
const roleSlots = int(roleCheckInterval/roleTick) + 1

// roleWheel runs the role checks of every live WebSocket session: one
// goroutine that ticks every roleTick while any session is watched, and
// a list of watches per tick, where a runtime timer per session cost an
// idle session 130 bytes. Each due check runs on a goroutine of its own,
// as a timer's func does: a check may ask the app's whoami.
type roleWheel struct {
	mu      sync.Mutex
	slots   [roleSlots]*roleWatch
	at      int // the slot of the current tick
	n       int // watches on the wheel
	running bool
}

var roleChecks roleWheel

// add puts w in the slot due after d (at least one tick); a stopped
// watch is left off.
func (rw *roleWheel) add(w *roleWatch, d time.Duration) {
	ticks := min(max(int((d+roleTick-1)/roleTick), 1), roleSlots-1)
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if w.stopped || w.slot >= 0 {
		return
	}
	slot := (rw.at + ticks) % roleSlots
	w.slot, w.prev, w.next = int32(slot), nil, rw.slots[slot]
	if w.next != nil {
		w.next.prev = w
	}
	rw.slots[slot] = w
	rw.n++
	if !rw.running {
		rw.running = true
		go rw.run()
	}
}

// remove takes w off the wheel for good.
func (rw *roleWheel) remove(w *roleWatch) {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	w.stopped = true
	rw.unlinkLocked(w)
}

func (rw *roleWheel) unlinkLocked(w *roleWatch) {
	if w.slot < 0 {
		return
	}
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		rw.slots[w.slot] = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	}
	w.slot, w.prev, w.next = -1, nil, nil
	rw.n--
}

// run ticks until no watch is left, starting the checks that are due.
func (rw *roleWheel) run() {
	t := time.NewTicker(roleTick)
	defer t.Stop()
	for range t.C {
		rw.mu.Lock()
		rw.at = (rw.at + 1) % roleSlots
		due := rw.slots[rw.at]
		for w := due; w != nil; {
			next := w.next
			w.slot, w.prev = -1, nil
			rw.n--
			w = next
		}
		rw.slots[rw.at] = nil
		idle := rw.n == 0 && due == nil
		if idle {
			rw.running = false
		}
		rw.mu.Unlock()
		for w := due; w != nil; {
			// w.next is the due list's own link until w's check puts w
			// on the wheel again, which this loop may race with: read
			// it first.
			next := w.next
			go w.check()
			w = next
		}
		if idle {
			return
		}
	}
}
