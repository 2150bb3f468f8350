package socketioproxy

import (
	"context"
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
		cut := d.cutNow
		d.timer = time.AfterFunc(timeout, cut)
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
	timeout := time.Duration(up.drainTimeout.Load())
	if up.drain(by, timeout, time.Now()) {
		h.logger.Warn("Socket.IO worker draining: no new sessions", zap.String("upstream", up.addr),
			zap.String("by", by), zap.Duration("live_sessions_end_after", timeout))
	}
}

// endDrain undoes a drain begun by by and logs it.
func (h *Handler) endDrain(up *upstreamState, by string) {
	if up.undrain(by) {
		h.logger.Warn("Socket.IO worker no longer draining: takes new sessions", zap.String("upstream", up.addr), zap.String("by", by))
	}
}

// retire closes the worker's live sessions now, as a drain does at its
// timeout: it left the dynamic source's set.
func (s *upstreamState) retire() {
	d := &s.drainState
	d.mu.Lock()
	defer d.mu.Unlock()
	d.init()
	d.cutNow()
}

// readmit lets a worker that is (again) in the set serve sessions, unless
// it is draining.
func (s *upstreamState) readmit() {
	d := &s.drainState
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cut != nil && d.cut.Err() != nil && d.since.IsZero() {
		d.cut = nil
	}
	d.init()
}
