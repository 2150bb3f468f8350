package socketioproxy

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"go.uber.org/zap"
)

// A worker about to be restarted for a deploy is drained: it takes no
// new sessions, and its live ones go on until they end or until the
// drain_timeout of the configs that name it has passed; then the edge
// closes them as it does when it exits (see exit.go), which makes
// socket.io-client reconnect at once, to another worker. A worker is
// drained through the admin API (POST, and DELETE to undo, on
// /socketio/upstreams/<address>/drain) or by its own health check,
// answering the drain status (HealthChecks.DrainStatus) while it shuts
// down.
//
// The state belongs to the worker (upstreamState), not to a config: a
// reload does not undo a drain.

// Who began a drain.
const (
	drainedByAdmin  = "admin"
	drainedByHealth = "health"
)

// drainState is a worker's drain. Its fields are under the worker's
// drainMu.
type drainState struct {
	mu    sync.Mutex
	since time.Time // zero: not draining
	by    string
	timer *time.Timer // closes the worker's sessions at the timeout
	// cut is cancelled when the worker's live sessions are to end:
	// relays and waiting long-polls watch it. A new one replaces it
	// when a drain ends.
	cut    context.Context
	cutNow context.CancelFunc
}

// init makes the first cut context; under mu, or before the state is
// shared.
func (d *drainState) init() {
	if d.cut == nil {
		d.cut, d.cutNow = context.WithCancel(context.Background())
	}
}

// drain begins to drain the worker, by admin or health, closing its
// sessions after timeout (never, if 0). It reports whether the worker
// was not draining before.
func (s *upstreamState) drain(by string, timeout time.Duration, now time.Time) bool {
	d := &s.drainState
	d.mu.Lock()
	defer d.mu.Unlock()
	d.init()
	if !d.since.IsZero() {
		if by == drainedByAdmin {
			d.by = by // an operator's drain outlives the health check's
		}
		return false
	}
	d.since, d.by = now, by
	if timeout > 0 {
		// The timer may fire while an undrain stops it: it cuts only
		// if this very drain is still on, looked at under mu.
		cut := d.cutNow
		d.timer = time.AfterFunc(timeout, func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			if d.since.Equal(now) {
				cut()
			}
		})
	}
	return true
}

// undrain ends a drain begun by by (an operator's ends either kind): the
// worker takes new sessions again. It reports whether it was draining.
func (s *upstreamState) undrain(by string) bool {
	d := &s.drainState
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.since.IsZero() || by == drainedByHealth && d.by == drainedByAdmin {
		return false
	}
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	d.since, d.by = time.Time{}, ""
	if d.cut != nil && d.cut.Err() != nil {
		d.cut = nil
		d.init()
	}
	return true
}

// draining reports whether the worker is draining, and since when.
func (s *upstreamState) draining() (bool, time.Time) {
	d := &s.drainState
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.since.IsZero(), d.since
}

// cutOff is done once the worker's live sessions are to end.
func (s *upstreamState) cutOff() context.Context {
	d := &s.drainState
	d.mu.Lock()
	defer d.mu.Unlock()
	d.init()
	return d.cut
}

// startDrain drains worker up and logs it.
func (h *Handler) startDrain(up *upstreamState, by string) {
	beginDrain(h.logger, h.registry, up, by)
}

// beginDrain drains worker up, spreads the end of its sessions over its
// drain_timeout, and logs it.
func beginDrain(logger *zap.Logger, reg *registry, up *upstreamState, by string) {
	timeout := time.Duration(up.drainTimeout.Load())
	now := time.Now()
	if !up.drain(by, timeout, now) {
		return
	}
	if timeout > 0 && reg != nil {
		reg.spreadCut(up, now, timeout)
	}
	logger.Warn("Socket.IO worker draining: no new sessions", zap.String("upstream", up.addr),
		zap.String("by", by), zap.Duration("live_sessions_end_within", timeout))
}

// endDrain undoes a drain begun by by and logs it.
func (h *Handler) endDrain(up *upstreamState, by string) {
	if up.undrain(by) {
		h.logger.Warn("Socket.IO worker no longer draining: takes new sessions", zap.String("upstream", up.addr), zap.String("by", by))
	}
}

// spreadCut lets go of the live sessions of worker up, drained since
// since, one by one, evenly over period in random order, so that their
// clients reconnect to the other workers as a stream rather than all in
// the same second (a reconnect storm on the workers left, which is what
// a deploy must not cause). A WebSocket gets the Engine.IO close packet
// and a 1001 at its moment; a polling session gets "Session ID unknown"
// at its first request after its moment. An undrain stops it.
func (s *registry) spreadCut(up *upstreamState, since time.Time, period time.Duration) {
	s.mu.Lock()
	var stops []*relayStop
	for rs := range s.relays {
		if rs.u.upstreamState == up {
			stops = append(stops, rs)
		}
	}
	var polls []*session
	for _, ss := range s.live {
		if ss.up == up && !ss.websocket {
			polls = append(polls, ss)
		}
	}
	rand.Shuffle(len(stops), func(i, j int) { stops[i], stops[j] = stops[j], stops[i] })
	for i, ss := range rand.Perm(len(polls)) {
		polls[ss].cutAt = since.Add(period * time.Duration(i) / time.Duration(len(polls)))
	}
	s.mu.Unlock()
	if len(stops) == 0 {
		return
	}
	go func() {
		n := time.Duration(len(stops))
		for i, rs := range stops {
			if wait := time.Until(since.Add(period * time.Duration(i) / n)); wait > 0 {
				time.Sleep(wait)
			}
			if draining, at := up.draining(); !draining || !at.Equal(since) {
				return
			}
			rs.drainStop()
		}
	}()
}

// letGo reports whether polling session sid, of a drained worker, is
// past its moment to go (see spreadCut). A moment given by a drain that
// has since been undone no longer counts.
func (s *registry) letGo(sid string, now time.Time) bool {
	s.mu.Lock()
	ss, ok := s.live[sid]
	var up *upstreamState
	var cutAt time.Time
	if ok {
		up, cutAt = ss.up, ss.cutAt
	}
	s.mu.Unlock()
	if !ok || cutAt.IsZero() || now.Before(cutAt) {
		return false
	}
	draining, since := up.draining()
	return draining && !since.After(cutAt)
}
