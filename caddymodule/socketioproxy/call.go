package socketioproxy

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/flaskedge/flaskedge/internal/engineio"
	"github.com/flaskedge/flaskedge/internal/identity"
	"github.com/flaskedge/flaskedge/internal/security"
	"github.com/flaskedge/flaskedge/internal/sticky"
)

// call is one Engine.IO request. What is known of it when it arrives (who
// and where it comes from, its query, the policy that applies) is
// computed once, in newCall and ServeHTTP, and read from here by the
// transports; routing then adds its worker and session.
type call struct {
	r      *http.Request
	client security.Client // its address (Caddy's client_ip) and Origin
	// limitKey is what the per-client limits count it under (see
	// limitIP and clientKey).
	limitKey string
	id       identity.Identity
	pol      *policy
	now      time.Time
	q        engineio.Query

	up        *upstream
	sid       string // as the client sees it; empty for a handshake
	workerSID string
	uri       string       // request URI for the worker, with the worker's sid
	owner     sticky.Owner // who opens the session, for a handshake
	// seat is a handshake's place in its worker's live count, until
	// the registry takes it over with the session (see seat).
	seat *seat
	// inFlight ends the call's count among its address's requests.
	inFlight func()
	// keep: the response was written whole and the connection may be
	// kept for the client's next request (parked, see keeper).
	keep bool
	// waiting is a GET that waits for its worker's answer parked (see
	// waitingPoll): it ends the call once answered.
	waiting *waitingPoll
	// pollDone frees the session's place for a request of its method.
	pollDone func()
	ended    atomic.Bool
}

// end releases what the call holds when ServeHTTP returns: a handshake's
// seat the registry did not take over, its place among its address's
// requests in flight.
func (c *call) end() {
	if c.waiting != nil && !c.waiting.ended.Load() {
		return // the waiting poll ends the call once answered
	}
	if !c.ended.CompareAndSwap(false, true) {
		return
	}
	c.seat.free()
	if c.inFlight != nil {
		c.inFlight()
	}
}

// gone reports whether the call's client has gone.
func (c *call) gone() bool {
	if c.waiting != nil {
		return c.waiting.clientGone()
	}
	return c.r.Context().Err() != nil
}

func (h *Handler) newCall(r *http.Request) *call {
	return &call{r: r, client: security.ClientOf(r), limitKey: clientKey(limitIP(r)), id: identity.Of(r), pol: h.policy, now: time.Now()}
}

// A seat is one live session, or one handshake in flight, in its worker's
// count (upstreamState.live), which the least_sessions policy and the
// metrics read. takeSeat is the only place the count grows and free the
// only place it shrinks: a handshake takes a seat when its worker is
// picked and frees it (deferred) unless the registry took it over with
// the session, which frees it when it forgets the session.
type seat struct {
	up    *upstreamState
	freed atomic.Bool
}

func takeSeat(up *upstreamState) *seat {
	up.live.Add(1)
	return &seat{up: up}
}

// free gives the seat back, once; nil does nothing.
func (s *seat) free() {
	if s != nil && s.freed.CompareAndSwap(false, true) {
		s.up.live.Add(-1)
	}
}
