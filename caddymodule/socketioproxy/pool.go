package socketioproxy

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/flaskedge/flaskedge/internal/sticky"
)

// Load-balancing policies for new sessions.
const (
	// PolicyLeastSessions sends a new session to the healthy worker with
	// the fewest live sessions on this edge.
	PolicyLeastSessions = "least_sessions"
	// PolicyRoundRobin sends new sessions to the healthy workers in turn.
	PolicyRoundRobin = "round_robin"
)

// pool is the set of workers and the rules that bind sessions to them.
// The set is fixed for a config's Upstreams; with a dynamic source it is
// the source's latest answer (see dynamic.go).
type pool struct {
	codec  *sticky.Codec
	policy string
	next   atomic.Uint64 // rotation start for ties and round robin
	set    atomic.Pointer[workerSet]
	// dyn is the dynamic source and what it keeps; nil with a fixed set.
	dyn *dynamicWorkers
}

// workerSet is the workers of the moment.
type workerSet struct {
	upstreams []*upstream
	byTag     map[sticky.Tag]*upstream
	key       string // the sorted addresses, to tell an unchanged answer
}

// workers is the set of the moment.
func (p *pool) workers() []*upstream { return p.set.Load().upstreams }

// byTag finds the worker of a sealed sid in the set of the moment.
func (p *pool) byTag(tag sticky.Tag) (*upstream, bool) {
	u, ok := p.set.Load().byTag[tag]
	return u, ok
}

// addrs lists the addresses of the set of the moment.
func (p *pool) addrs() []string {
	ws := p.workers()
	out := make([]string, len(ws))
	for i, u := range ws {
		out[i] = u.addr
	}
	return out
}

// pick chooses the worker for a new session; nil when no worker is
// healthy. The caller takes a seat on it.
func (p *pool) pick(now time.Time) *upstream {
	ups := p.workers()
	n := len(ups)
	if n == 0 {
		return nil
	}
	start := int(p.next.Add(1) % uint64(n))
	var best *upstream
	for i := range n {
		u := ups[(start+i)%n]
		if !u.takesNewSessions(now) {
			continue
		}
		if p.policy == PolicyRoundRobin {
			best = u
			break
		}
		if best == nil || u.live.Load() < best.live.Load() {
			best = u
		}
	}
	return best
}

// HealthChecks configures active health checks of the workers, with the
// names and meaning of reverse_proxy's active checks.
type HealthChecks struct {
	// URI is the path (and query) requested from each worker, e.g.
	// "/healthz". Empty disables active checks.
	URI string `json:"uri,omitempty"`
	// Interval between checks. Default: 5s.
	Interval caddy.Duration `json:"interval,omitempty"`
	// Timeout of one check. Default: 2s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// ExpectStatus is the status a healthy worker answers: a code such
	// as 200, or a class such as 2 for any 2xx. Default: any 2xx.
	ExpectStatus int `json:"expect_status,omitempty"`
	// Passes is how many checks in a row must pass before an unhealthy
	// worker takes sessions again. Default: 1.
	Passes int `json:"passes,omitempty"`
	// Fails is how many checks in a row must fail before a healthy
	// worker is taken out of rotation (and its sessions told to
	// reconnect elsewhere). Default: 1.
	Fails int `json:"fails,omitempty"`
	// DrainStatus is the status a worker answers while it shuts down
	// for a deploy: it is then drained (no new sessions; its live ones
	// go on, up to drain_timeout) rather than unhealthy, until it
	// answers the healthy status again. -1 turns this off. Default: 410.
	DrainStatus int `json:"drain_status,omitempty"`
}

// healthLoop is the config's active health checks, a goroutine that ends
// with the config: its context derives from the module's caddy.Context,
// and Cleanup stops it and waits for it.
type healthLoop struct {
	stop context.CancelFunc
	done chan struct{}
}

func (h *Handler) startHealthChecks(ctx caddy.Context) *healthLoop {
	hctx, stop := context.WithCancel(ctx)
	l := &healthLoop{stop: stop, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		h.runHealthChecks(hctx)
	}()
	return l
}

// end stops the checks and waits for the last one to finish; nil does
// nothing.
func (l *healthLoop) end() {
	if l != nil {
		l.stop()
		<-l.done
	}
}

// runHealthChecks checks every worker each interval until ctx ends. A
// worker turns unhealthy after Fails checks in a row that fail (no answer
// in time, or a status other than ExpectStatus) and healthy again after
// Passes in a row that pass.
func (h *Handler) runHealthChecks(ctx context.Context) {
	hc := h.HealthChecks
	streaks := make(map[*upstream]*streak)
	check := func() {
		for _, u := range h.pool.workers() {
			// The worker's own transport: the same TLS as its sessions.
			client := &http.Client{Transport: u.http, Timeout: time.Duration(hc.Timeout)}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.httpURL(hc.URI), nil)
			if err != nil {
				return
			}
			res, err := client.Do(req)
			ok := err == nil && statusMatches(res.StatusCode, hc.ExpectStatus)
			drain := err == nil && res.StatusCode == hc.DrainStatus
			if res != nil {
				res.Body.Close()
			}
			if ctx.Err() != nil {
				// The config ended during the check: its verdict is
				// not the worker's.
				return
			}
			switch {
			case drain:
				// Alive, shutting down: its sessions go on.
				ok = true
				h.startDrain(u.upstreamState, drainedByHealth)
			case ok:
				h.endDrain(u.upstreamState, drainedByHealth)
			}
			st := streaks[u]
			if st == nil {
				st = new(streak)
				streaks[u] = st
			}
			was := u.checkedHealthy.Load()
			now := st.record(ok, was, hc)
			if now == was {
				continue
			}
			u.checkedHealthy.Store(now)
			fields := []zap.Field{zap.String("upstream", u.addr), zap.Bool("healthy", now), zap.Int("in_a_row", max(st.n, -st.n))}
			if err != nil {
				fields = append(fields, zap.Error(err))
			} else if !ok {
				fields = append(fields, zap.Int("status", res.StatusCode))
			}
			h.logger.Warn("Socket.IO worker health changed", fields...)
		}
	}
	ticker := time.NewTicker(time.Duration(hc.Interval))
	defer ticker.Stop()
	for {
		check()
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// streak is a worker's run of health checks: n > 0 passes in a row,
// n < 0 fails in a row.
type streak struct{ n int }

// record adds a check's result and returns the worker's verdict, healthy
// before: it changes after hc.Fails fails or hc.Passes passes in a row.
func (s *streak) record(pass, healthy bool, hc *HealthChecks) bool {
	switch {
	case pass && s.n >= 0:
		s.n++
	case pass:
		s.n = 1
	case s.n <= 0:
		s.n--
	default:
		s.n = -1
	}
	if healthy && s.n <= -hc.Fails {
		return false
	}
	if !healthy && s.n >= hc.Passes {
		return true
	}
	return healthy
}

// statusMatches reports whether a health check's status is the one
// expected: any 2xx when expect is 0, a class when it is one digit.
func statusMatches(status, expect int) bool {
	if expect == 0 {
		return status/100 == 2
	}
	return caddyhttp.StatusCodeMatches(status, expect)
}
