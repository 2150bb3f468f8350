package socketioproxy

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
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
		Upstreams:    []string{"wss://w1:5001", "w2"},
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
		"sticky_secret is 13 characters", `upstream "wss://w1:5001"`, `upstream "w2"`,
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

// Plain and TLS workers are never mixed silently, and a TLS setting the
// edge cannot honour is refused with the fix.
func TestPlainAndTLSWorkersAreNotMixed(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    *Handler
		want string
	}{
		{"http beside https", &Handler{Upstreams: []string{"http://w1:5001", "https://w2:5001"}},
			"workers http://w1:5001 are plain http and https://w2:5001 are https; plain and TLS workers are not mixed"},
		{"http with TLS settings", &Handler{Upstreams: []string{"http://w1:5001"}, TLS: &reverseproxy.TLSConfig{ServerName: "w"}},
			"workers http://w1:5001 are plain http but the transport has TLS settings; write them as https://host:port"},
		{"except_ports", &Handler{Upstreams: []string{"w1:5001"}, TLS: &reverseproxy.TLSConfig{ExceptPorts: []string{"80"}}},
			"tls_except_ports) is not supported: plain and TLS workers are not mixed"},
		{"missing CA file", &Handler{Upstreams: []string{"w1:5001"}, TLS: &reverseproxy.TLSConfig{
			CARaw: json.RawMessage(`{"provider":"file","pem_files":["/nonexistent/ca.pem"]}`)}},
			"/nonexistent/ca.pem"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := load(t, tc.h)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// Without a scheme a worker follows the transport; https:// alone turns
// TLS on for every worker, with the system's roots, as for reverse_proxy.
func TestTLSWorkersUseOneConfigForPollingWebSocketAndChecks(t *testing.T) {
	h := &Handler{Upstreams: []string{"https://w1:5001", "w2:5001"}}
	require.NoError(t, load(t, h))
	for _, u := range h.pool.workers() {
		assert.Equal(t, "https://"+u.addr+"/socket.io/", u.httpURL("/socket.io/"))
		assert.Equal(t, "wss://"+u.addr+"/socket.io/", u.wsURL("/socket.io/"))
		require.NotNil(t, u.http.TLSClientConfig)
		assert.Same(t, u.http.TLSClientConfig, u.dialer.TLSClientConfig)
		assert.False(t, u.http.TLSClientConfig.InsecureSkipVerify)
	}
	// A worker a dynamic source adds later is reached the same way.
	added := h.newUpstream("w3:5001", h.pool.codec.Tag("w3:5001"))
	defer added.close()
	assert.Equal(t, "wss://w3:5001/x", added.wsURL("/x"))
	assert.Same(t, h.pool.workers()[0].http.TLSClientConfig, added.http.TLSClientConfig)

	plain := &Handler{Upstreams: []string{"w1:5001", "http://w2:5001"}}
	require.NoError(t, load(t, plain))
	for _, u := range plain.pool.workers() {
		assert.Equal(t, "ws://"+u.addr+"/x", u.wsURL("/x"))
		assert.Nil(t, u.http.TLSClientConfig)
		assert.Nil(t, u.dialer.TLSClientConfig)
	}
}
