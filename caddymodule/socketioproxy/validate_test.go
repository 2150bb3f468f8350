package socketioproxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// load provisions and validates h as Caddy does, cleaning up on failure.
func load(t *testing.T, h *Handler) error {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	err := h.Provision(ctx)
	if err == nil {
		err = h.Validate()
	}
	if err != nil {
		require.NoError(t, h.Cleanup())
		return err
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	return nil
}

// Every problem of a config is reported at once, and a secret never
// appears in the message.
func TestValidateReportsEveryProblemAndNoSecret(t *testing.T) {
	h := &Handler{
		Upstreams:    []string{"https://w1:5001", "w2"},
		StickySecret: "hunter2-short",
		Path:         "/socket.io",
		LBPolicy:     "random",
		HealthChecks: &HealthChecks{URI: "healthz", ExpectStatus: 99, Fails: -1},
		Namespaces:   map[string]*NamespaceRule{"admin": {Access: AccessRole}},
		RateLimits:   &RateLimits{Messages: &Rate{Events: 0, Window: caddy.Duration(time.Second)}},
		DrainPeriod:  caddy.Duration(-time.Second),
	}
	err := load(t, h)
	require.Error(t, err)
	msg := err.Error()
	assert.NotContains(t, msg, "hunter2")
	assert.Equal(t, 1, strings.Count(msg, "socketio_proxy:"), msg)
	for _, want := range []string{
		"sticky_secret is 13 characters", `upstream "https://w1:5001"`, `upstream "w2"`,
		`path "/socket.io"`, `lb_policy "random"`, `health_uri "healthz"`, "health_status 99",
		"health_passes and health_fails", `namespace "admin"`, "rate_limit messages", "drain_period -1s",
	} {
		assert.Contains(t, msg, want)
	}
}

// Health checks use reverse_proxy's fields: a worker leaves rotation
// after `fails` failed checks in a row, returns after `passes` passing
// ones, and a check passes on expect_status only.
func TestHealthChecksCountPassesAndFails(t *testing.T) {
	var status atomic.Int64
	status.Store(http.StatusOK)
	worker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
	}))
	defer worker.Close()
	h := &Handler{
		Upstreams: []string{strings.TrimPrefix(worker.URL, "http://")},
		HealthChecks: &HealthChecks{URI: "/healthz", Interval: caddy.Duration(10 * time.Millisecond),
			ExpectStatus: 204, Passes: 3, Fails: 2},
	}
	require.NoError(t, load(t, h))
	u := h.pool.workers()[0]
	require.Eventually(t, func() bool { return !u.checkedHealthy.Load() }, 5*time.Second, 5*time.Millisecond,
		"200 is not the expected 204")
	status.Store(http.StatusNoContent)
	require.Eventually(t, u.checkedHealthy.Load, 5*time.Second, 5*time.Millisecond)
	status.Store(http.StatusServiceUnavailable)
	require.Eventually(t, func() bool { return !u.checkedHealthy.Load() }, 5*time.Second, 5*time.Millisecond)
	assert.True(t, statusMatches(204, 2) && statusMatches(200, 0) && !statusMatches(301, 0) && statusMatches(503, 503))
}

// The passes and fails thresholds, check by check.
func TestHealthStreaks(t *testing.T) {
	hc := &HealthChecks{Passes: 2, Fails: 3}
	var s streak
	healthy := true
	seq := []struct {
		pass bool
		want bool
	}{
		{false, true}, {false, true}, {true, true}, // a pass resets the fails
		{false, true}, {false, true}, {false, false}, // the third in a row
		{true, false}, {false, false}, {true, false}, {true, true},
	}
	for i, c := range seq {
		healthy = s.record(c.pass, healthy, hc)
		assert.Equal(t, c.want, healthy, "check %d", i)
	}
}
