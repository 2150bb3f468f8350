package socketioproxy

import (
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// What the edge knows of its workers and sessions outlives a config: on
// `caddy reload` the new config is provisioned before the old one is
// cleaned up, and both must count the same sessions on the same workers.
// So the state lives in package-level UsagePools, as caddy-ratelimit
// keeps its buckets: each config takes a reference in Provision and drops
// it in Cleanup, and the state goes away with the last config using it.
var (
	// upstreamStates holds an *upstreamState per worker address.
	upstreamStates = caddy.NewUsagePool()
	// registries holds the one *sessions registry of the process.
	registries = caddy.NewUsagePool()
)

const registryKey = "sessions"

// upstreamState is a worker's live sessions and health.
type upstreamState struct {
	addr string
	// live counts the live Engine.IO live this edge has on the
	// worker, including handshakes in flight.
	live atomic.Int64
	// checkedHealthy is the last active health check's verdict (true
	// when there are no active checks).
	checkedHealthy atomic.Bool
	// downUntil is set by passive failure detection: until then, in
	// Unix nanoseconds, the worker counts as unhealthy.
	downUntil atomic.Int64
	// drainState is set while the worker is drained for a deploy (see
	// drain.go).
	drainState drainState
	// drainTimeout is the drain_timeout of the last config that named
	// the worker, in nanoseconds.
	drainTimeout atomic.Int64
}

// Destruct implements caddy.Destructor.
func (*upstreamState) Destruct() error { return nil }

// loadUpstreamState takes a reference to the state of the worker at addr.
func loadUpstreamState(addr string) *upstreamState {
	v, _, _ := upstreamStates.LoadOrNew(addr, func() (caddy.Destructor, error) {
		s := &upstreamState{addr: addr}
		s.checkedHealthy.Store(true)
		s.drainState.init()
		return s, nil
	})
	return v.(*upstreamState)
}

// healthy reports whether the worker is healthy: its active health
// check passes and no recent failure to reach it took it out of rotation.
func (s *upstreamState) healthy(now time.Time) bool {
	return s.checkedHealthy.Load() && now.UnixNano() >= s.downUntil.Load()
}

// takesNewSessions reports whether new sessions may go to the worker:
// healthy and not draining.
func (s *upstreamState) takesNewSessions(now time.Time) bool {
	draining, _ := s.draining()
	return !draining && s.healthy(now)
}

// serving reports whether the worker's existing sessions may keep using
// it. Only an active health check can say no: a passive mark comes from
// one failed or slow request (a handshake that timed out on a busy
// worker, say) and steers new sessions elsewhere without cutting off the
// worker's live ones; a worker that is really gone fails their requests
// on its own, and they get "Session ID unknown" then.
func (s *upstreamState) serving() bool {
	return s.checkedHealthy.Load() && s.cutOff().Err() == nil
}

// markDown takes the worker out of rotation for d after a failure to reach
// it.
func (s *upstreamState) markDown(now time.Time, d time.Duration) {
	s.downUntil.Store(now.Add(d).UnixNano())
}

// loadRegistry takes a reference to the process's session registry.
func loadRegistry() *registry {
	v, _, _ := registries.LoadOrNew(registryKey, func() (caddy.Destructor, error) {
		return newRegistry(), nil
	})
	return v.(*registry)
}
