package socketioproxy

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
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
type pool struct {
	upstreams []*upstream
	byTag     map[sticky.Tag]*upstream
	codec     *sticky.Codec
	policy    string
	next      atomic.Uint64 // rotation start for ties and round robin
}

// pick chooses the worker for a new session and counts the session on it;
// nil when no worker is healthy.
func (p *pool) pick(now time.Time) *upstream {
	n := len(p.upstreams)
	start := int(p.next.Add(1) % uint64(n))
	var best *upstream
	for i := range n {
		u := p.upstreams[(start+i)%n]
		if !u.healthy(now) {
			continue
		}
		if p.policy == PolicyRoundRobin {
			best = u
			break
		}
		if best == nil || u.sessions.Load() < best.sessions.Load() {
			best = u
		}
	}
	if best != nil {
		best.sessions.Add(1)
	}
	return best
}

// HealthChecks configures active health checks of the workers.
type HealthChecks struct {
	// URI is the path (and query) requested from each worker, e.g.
	// "/healthz". Empty disables active checks.
	URI string `json:"uri,omitempty"`
	// Interval between checks. Default: 5s.
	Interval caddy.Duration `json:"interval,omitempty"`
	// Timeout of one check. Default: 2s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// ExpectStatus is the status a healthy worker answers, as
	// reverse_proxy's expect_status: a code such as 200, or one digit
	// for its class (2 for any 2xx). Default: any 2xx.
	ExpectStatus int `json:"expect_status,omitempty"`
	// Passes is how many checks in a row an unhealthy worker must pass
	// to be healthy again, as reverse_proxy's passes. Default: 1.
	Passes int `json:"passes,omitempty"`
	// Fails is how many checks in a row a healthy worker must fail to
	// be taken out of rotation, as reverse_proxy's fails. Default: 1.
	Fails int `json:"fails,omitempty"`
}

// runHealthChecks checks every worker each interval until ctx ends. A
// worker is healthy while it answers URI with a 2xx status in time.
func (h *Handler) runHealthChecks(ctx context.Context) {
	hc := h.HealthChecks
	client := &http.Client{Timeout: time.Duration(hc.Timeout)}
	check := func() {
		for _, u := range h.pool.upstreams {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.httpURL(hc.URI), nil)
			if err != nil {
				return
			}
			res, err := client.Do(req)
			ok := err == nil && res.StatusCode/100 == 2
			if res != nil {
				res.Body.Close()
			}
			if ctx.Err() != nil {
				// The config ended during the check: its verdict is
				// not the worker's.
				return
			}
			if was := u.checkedHealthy.Swap(ok); was != ok {
				fields := []zap.Field{zap.String("upstream", u.addr), zap.Bool("healthy", ok)}
				if err != nil {
					fields = append(fields, zap.Error(err))
				} else if !ok {
					fields = append(fields, zap.Int("status", res.StatusCode))
				}
				h.logger.Warn("Socket.IO worker health changed", fields...)
			}
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
