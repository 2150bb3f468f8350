package socketioproxy

import (
	"bytes"
	"context"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/flaskedge/flaskedge/internal/engineio"
	"github.com/flaskedge/flaskedge/internal/identity"
	"github.com/flaskedge/flaskedge/internal/relay"
	"github.com/flaskedge/flaskedge/internal/security"
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

// withdraw finds the namespaces session sid is connected to that id may
// no longer use under pol, forgets them, and logs each. It returns their
// DISCONNECT packets.
func (h *Handler) withdraw(pol *policy, sid string, id identity.Identity, client security.Client) [][]byte {
	var out [][]byte
	for _, ns := range h.sessions.namespacesOf(sid) {
		d := pol.admit(id, ns)
		if d == nil {
			continue
		}
		h.sessions.left(sid, ns)
		security.Refused(security.ReasonNamespace)
		security.LogClient(h.security, "socketio_proxy", security.NamespaceDenied, d.reason+"; withdrawn from a live session",
			client, security.Fields{UserID: id.UserID, Namespace: ns})
		out = append(out, disconnectPacket(ns))
	}
	return out
}

// withdrawPolling withdraws, on a long-poll GET, the namespaces the
// session may no longer use: the worker gets their DISCONNECTs in a POST
// of the edge's own, and the GET is answered with them at once. It
// reports whether it answered the GET.
func (h *Handler) withdrawPolling(w http.ResponseWriter, r *http.Request, c *call) bool {
	if !c.pol.hasRules() {
		return false
	}
	packets := h.withdraw(c.pol, c.sid, c.id.At(time.Now()), security.ClientOf(r))
	if len(packets) == 0 {
		return false
	}
	payload := bytes.Join(packets, []byte{engineio.RecordSeparator})
	out, err := http.NewRequestWithContext(r.Context(), http.MethodPost, c.up.httpURL(c.uri), bytes.NewReader(payload))
	if err == nil {
		out.Header = upstreamHeader(r, false)
		out.Header.Set("Content-Type", "text/plain;charset=UTF-8")
		out.Host = r.Host
		var res *http.Response
		if res, err = c.up.http.RoundTrip(out); err == nil {
			res.Body.Close()
		}
	}
	if err != nil {
		h.logger.Warn("could not tell the worker of a withdrawn namespace", zap.String("upstream", c.up.addr), zap.Error(err))
	}
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(payload)
	return true
}

// liveIdentity is the user of a WebSocket session, as of its upgrade,
// and the way to ask for it as of now.
type liveIdentity struct {
	at     identity.Identity
	logger *zap.Logger
}

// current is the session's user as of now: with whoami, the app's answer
// no older than its TTL; anonymous once the cookie has expired, or when
// the app cannot say (fail closed).
func (l *liveIdentity) current() identity.Identity {
	id := l.at
	if id.Refresh != nil {
		fresh, err := id.Refresh(context.Background())
		if err != nil {
			l.logger.Warn("whoami lookup for a live Socket.IO session failed; treating it as anonymous until it answers",
				zap.String("user_id", id.UserID), zap.Error(err))
			return identity.Identity{}
		}
		id = fresh
	}
	return id.At(time.Now())
}

// watchRoles checks a live WebSocket session's namespaces every
// roleCheckInterval, and when its cookie expires, until stop is called.
// Anonymous sessions have nothing to lose and are not watched.
func (h *Handler) watchRoles(slot *policySlot, sid string, live *liveIdentity, client security.Client, inj *relay.Injector) (stop func()) {
	if live.at.Anonymous() {
		return func() {}
	}
	var (
		mu      sync.Mutex
		timer   *time.Timer
		stopped bool
	)
	var check func()
	schedule := func() {
		next := roleCheckInterval
		if exp := live.at.Expires; !exp.IsZero() {
			if until := time.Until(exp); until > 0 && until < next {
				next = until
			}
		}
		mu.Lock()
		if !stopped {
			timer = time.AfterFunc(next, check)
		}
		mu.Unlock()
	}
	check = func() {
		if pol := slot.now(); pol.hasRules() {
			for _, p := range h.withdraw(pol, sid, live.current(), client) {
				if inj.ToUpstream(p) != nil || inj.ToClient(p) != nil {
					break
				}
			}
		}
		schedule()
	}
	schedule()
	return func() {
		mu.Lock()
		stopped = true
		timer.Stop()
		mu.Unlock()
	}
}
