package socketioproxy

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/flaskedge/flaskedge/internal/relay"
	"go.uber.org/zap"
)

// When the process exits, every session on this edge is told to go: a
// waiting long-poll gets the Engine.IO close packet at once (the server
// has stopped accepting connections, so its session cannot go on here
// anyway), and each relayed WebSocket gets the Engine.IO close packet and
// a 1001 close at a moment of its own, spread evenly over its handler's
// DrainPeriod in random order. Until its moment a WebSocket session keeps
// working, and its clients' reconnections reach the remaining edges as a
// stream rather than all at the same instant (HAProxy calls this
// close-spread-time). The process waits for every relay to finish its
// close, at most the longest DrainPeriod plus drainSlack.

// drainSlack is how long, after the last relay was told to stop, the
// process still waits for the relays to finish their close handshakes: the
// relay gives each side 5 s to answer a close (relay.Options.CloseGrace).
const drainSlack = 6 * time.Second

// relayStop ends one WebSocket relay when the edge drains, or when its
// worker is drained for a deploy (see drain.go).
type relayStop struct {
	relay.Stopper
	period time.Duration   // the DrainPeriod of the relay's handler
	u      *upstream       // its worker, as the relay's config sees it
	cut    context.Context // the worker's cutOff as the relay started
}

// stop ends the relay as the edge exits; drainStop as its worker drains.
func (rs *relayStop) stop()      { rs.Stop("") }
func (rs *relayStop) drainStop() { rs.Stop(errWorkerDrained.Error()) }

// ctxWatch is the one context.AfterFunc on a context that ends every
// relay of a worker (its cutOff, or its config's retired), shared by the
// relays that run while it is not done: n of them.
type ctxWatch struct {
	n    int
	stop func() bool
}

// relaying registers rs, the record of a relay that is about to start,
// with its handler's drain period and its worker, and returns the
// Stopper that ends the relay when its turn to drain comes; unrelay
// takes rs out once the relay has ended. The record is a field of the
// session's own state, not an allocation of its own. A relay that starts
// while the edge is draining is stopped at once.
//
// Whatever is left of a drained worker's sessions at drain_timeout, or
// of one that left the dynamic set, ends at once: one watch per worker's
// context, not per relay, which would cost an idle connection more than
// its relay does.
func (s *registry) relaying(rs *relayStop, period time.Duration, u *upstream) *relay.Stopper {
	cut, retired := u.cutOff(), u.retired
	rs.period, rs.u, rs.cut = period, u, cut
	if u.shared != nil {
		// The relay outlives its config: the worker's retirement stays
		// the one a later config of the source shares until it ends.
		u.shared.hold()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.relays[rs] = struct{}{}
	// Matched by the very context: an undrain makes a new cutOff, and
	// the relays that started under it are not the old cut's; a reload
	// gives a dynamic worker's relays of both configs one retirement.
	s.watchLocked(cut)
	s.watchLocked(retired)
	switch {
	case s.stopping:
		rs.stop()
	case cut.Err() != nil || retired.Err() != nil:
		// The watch may have stopped the worker's relays before this
		// one was among them (checked under mu, which it takes).
		rs.drainStop()
	}
	return &rs.Stopper
}

// unrelay takes out the record of a relay that has ended.
func (s *registry) unrelay(rs *relayStop) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.relays, rs)
	s.unwatchLocked(rs.cut)
	s.unwatchLocked(rs.u.retired)
	if rs.u.shared != nil {
		rs.u.shared.let()
	}
	if len(s.relays) == 0 && s.relaysGone != nil {
		close(s.relaysGone)
		s.relaysGone = nil
	}
}

// watchLocked counts one more relay or parked GET that ends with ctx,
// and watches ctx if none did: once done, it drain-stops the relays and
// ends the parked GETs whose worker's cutOff, or whose config's
// retirement, ctx is. s.mu is held.
func (s *registry) watchLocked(ctx context.Context) {
	if w := s.watches[ctx]; w != nil {
		w.n++
		return
	}
	s.watches[ctx] = &ctxWatch{n: 1, stop: context.AfterFunc(ctx, func() {
		s.mu.Lock()
		var stops []*relayStop
		for rs := range s.relays {
			if rs.cut == ctx || rs.u.retired == ctx {
				stops = append(stops, rs)
			}
		}
		var polls []*waitingPoll
		for wp := range s.polls {
			if wp.cut == ctx || wp.c.up.retired == ctx {
				polls = append(polls, wp)
			}
		}
		s.mu.Unlock()
		for _, rs := range stops {
			rs.drainStop()
		}
		for _, wp := range polls {
			go wp.endWith(nil)
		}
	})}
}

// pollWaiting registers a parked GET, to be ended (endWith) when its
// worker is cut off or leaves, or the edge exits. It reports false when
// the GET must end at once.
func (s *registry) pollWaiting(wp *waitingPoll) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping || wp.cut.Err() != nil || wp.c.up.retired.Err() != nil {
		return false
	}
	s.polls[wp] = struct{}{}
	parkedWaiting.Inc()
	s.watchLocked(wp.cut)
	s.watchLocked(wp.c.up.retired)
	return true
}

// pollAnswered takes out a parked GET registered by pollWaiting.
func (s *registry) pollAnswered(wp *waitingPoll) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.polls[wp]; !ok {
		return
	}
	delete(s.polls, wp)
	parkedWaiting.Dec()
	s.unwatchLocked(wp.cut)
	s.unwatchLocked(wp.c.up.retired)
}

// unwatchLocked counts one relay fewer that ends with ctx. s.mu is held.
func (s *registry) unwatchLocked(ctx context.Context) {
	w := s.watches[ctx]
	if w == nil {
		return
	}
	if w.n--; w.n == 0 {
		w.stop()
		delete(s.watches, ctx)
	}
}

// drain begins to close every session, once.
func (s *registry) drain() {
	s.drainOnce.Do(func() {
		// First the context of the GETs that wait, so that one ended
		// for the edge's exit finds it done.
		s.drainPoll()
		s.mu.Lock()
		s.stopping = true
		stops := make([]*relayStop, 0, len(s.relays))
		for rs := range s.relays {
			stops = append(stops, rs)
		}
		polls := 0
		for _, ss := range s.live {
			if !ss.websocket {
				polls++
			}
		}
		parked := make([]*waitingPoll, 0, len(s.polls))
		for wp := range s.polls {
			parked = append(parked, wp)
		}
		s.mu.Unlock()
		// Each on its own goroutine, as a client that stopped reading
		// holds its answer's write up to answerWriteStall; the process
		// waits for them (Destruct calls drain).
		var wg sync.WaitGroup
		for _, wp := range parked {
			wg.Go(func() { wp.endWith(nil) })
		}
		wg.Wait()

		longest := time.Duration(0)
		for _, rs := range stops {
			longest = max(longest, rs.period)
		}
		caddy.Log().Named("http.handlers.socketio_proxy").Info("edge exiting: closing its Socket.IO sessions",
			zap.Int("polling", polls), zap.Int("websocket", len(stops)), zap.Duration("websocket_over", longest))
		if longest == 0 {
			for _, rs := range stops {
				rs.stop()
			}
			return
		}
		rand.Shuffle(len(stops), func(i, j int) { stops[i], stops[j] = stops[j], stops[i] })
		go spread(stops, time.Now())
	})
}

// spread stops the i-th of n relays at start + its period × i/n.
func spread(stops []*relayStop, start time.Time) {
	n := time.Duration(len(stops))
	for i, rs := range stops {
		if wait := time.Until(start.Add(rs.period * time.Duration(i) / n)); wait > 0 {
			time.Sleep(wait)
		}
		rs.stop()
	}
}

// awaitRelays waits, after drain, until every relay has ended or the
// longest drain period plus drainSlack has passed.
func (s *registry) awaitRelays() {
	s.mu.Lock()
	if len(s.relays) == 0 {
		s.mu.Unlock()
		return
	}
	longest := time.Duration(0)
	for rs := range s.relays {
		longest = max(longest, rs.period)
	}
	gone := make(chan struct{})
	s.relaysGone = gone
	s.mu.Unlock()

	timer := time.NewTimer(longest + drainSlack)
	defer timer.Stop()
	select {
	case <-gone:
	case <-timer.C:
		s.mu.Lock()
		left := len(s.relays)
		s.mu.Unlock()
		caddy.Log().Named("http.handlers.socketio_proxy").Warn("edge exiting with WebSocket sessions still closing",
			zap.Int("websocket", left), zap.Duration("waited", longest+drainSlack))
	}
}
