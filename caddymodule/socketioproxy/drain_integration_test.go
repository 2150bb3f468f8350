package socketioproxy_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// drainStack is two workers behind an edge with drain_timeout.
func drainStack(t *testing.T, extra string) (url string, edge *testenv.Edge, workers []*testenv.FlaskWorker) {
	t.Helper()
	testenv.RequireNode(t)
	redis := testenv.StartRedis(t)
	for _, name := range []string{"A", "B"} {
		workers = append(workers, testenv.StartFlaskWorker(t, testenv.FlaskOptions{
			Name: name, SecretKey: "drain-secret", RedisURL: "redis://" + redis,
		}))
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	edge = testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%s {
	bind 127.0.0.1
	log {
		level INFO
	}
	socketio_proxy {
		to %s %s
		sticky_secret %s
		drain_timeout 2s
%s
	}
}
`, addr, workers[0].Addr, workers[1].Addr, stickySecret, extra)), addr)
	return "http://" + addr, edge, workers
}

func adminDo(t *testing.T, edge *testenv.Edge, method, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+edge.AdminAddr+path, nil)
	require.NoError(t, err)
	req.Header.Set("Origin", "http://"+edge.AdminAddr)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// A worker drained through the admin API for a deploy takes no new
// session; its live sessions go on until drain_timeout, then they are
// closed as at the edge's exit and their clients reconnect at once to
// the other worker; the other worker's sessions notice nothing.
// DELETE undoes the drain.
func TestDrainedWorkerHandsItsSessionsOverAfterDrainTimeout(t *testing.T) {
	url, edge, workers := drainStack(t, "")
	probe := testenv.StartProbe(t, testenv.ProbeOptions{
		URL:          url,
		TransportMix: [][]string{{"polling"}, {"websocket"}, nil},
		Sessions:     60,
		Echoes:       1,
		UpgradeWait:  true,
		TimeoutMs:    60000,
		KeepAlive:    true,
		Reconnection: true,

		ReconnectionDelay:    int(reconnectionDelay.Milliseconds()),
		ReconnectionDelayMax: int(reconnectionDelayMax.Milliseconds()),
		DurationMs:           7000,
		IntervalMs:           500,
	})
	drained, other := workers[0], workers[1]
	status, body := adminDo(t, edge, http.MethodPost, "/socketio/upstreams/"+drained.Addr+"/drain")
	require.Equal(t, http.StatusOK, status, body)
	drainedAt := time.Now()
	var st struct {
		Address  string `json:"address"`
		Draining bool   `json:"draining"`
		Healthy  bool   `json:"healthy"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &st), body)
	assert.True(t, st.Draining && st.Healthy, "%s", body)

	// New sessions meanwhile: all on the other worker.
	fresh := testenv.RunProbe(t, testenv.ProbeOptions{URL: url, Sessions: 10, Echoes: 1})
	require.Empty(t, fresh.Failures)
	assert.Equal(t, map[string]int{other.Name: 10}, fresh.Workers, "new sessions go only to the worker not draining")

	_, metrics := adminDo(t, edge, http.MethodGet, "/metrics")
	assert.Contains(t, metrics, fmt.Sprintf(`caddy_socketio_upstream_draining{upstream=%q} 1`, drained.Addr))

	res := probe.Wait()
	require.Empty(t, res.Failures)
	onDrained, moved := 0, 0
	var cuts []time.Duration
	for _, tl := range res.Timelines {
		if tl.FirstWorker() != drained.Name {
			assert.Len(t, tl.Connects, 1, "session %d on the other worker was disturbed: %+v", tl.Session, tl.Disconnects)
			assert.Empty(t, tl.EchoFailures, "session %d", tl.Session)
			continue
		}
		onDrained++
		require.GreaterOrEqual(t, len(tl.Disconnects), 1, "session %d was never moved off the drained worker", tl.Session)
		cut := tl.Disconnects[0].At.Time()
		assert.True(t, cut.After(drainedAt.Add(-500*time.Millisecond)) && cut.Before(drainedAt.Add(3*time.Second)),
			"session %d closed within the drain timeout, at %v after the drain (%s)", tl.Session, cut.Sub(drainedAt), tl.Disconnects[0].Reason)
		cuts = append(cuts, cut.Sub(drainedAt))
		require.GreaterOrEqual(t, len(tl.Connects), 2, "session %d did not reconnect", tl.Session)
		back := tl.Connects[1]
		assert.Equal(t, other.Name, back.Worker, "session %d reconnected to the other worker", tl.Session)
		assert.Less(t, back.At.Time().Sub(cut), reconnectWithin+time.Second, "session %d back within the reconnect delay", tl.Session)
		for _, f := range tl.EchoFailures {
			assert.False(t, f.At.Time().Before(cut.Add(-500*time.Millisecond)), "session %d lost an echo before its cut: %+v", tl.Session, f)
		}
		moved++
	}
	assert.Positive(t, onDrained, "no session was on the drained worker")
	assert.Equal(t, onDrained, moved)
	// Spread over the drain timeout, not all at its end.
	slices.Sort(cuts)
	if len(cuts) >= 4 {
		assert.Less(t, cuts[len(cuts)/4], 1500*time.Millisecond, "the first quarter let go in the first part of the 2s: %v", cuts)
		assert.Greater(t, cuts[len(cuts)-1]-cuts[0], 700*time.Millisecond, "the sessions were let go over the period, not at once: %v", cuts)
	}

	status, body = adminDo(t, edge, http.MethodDelete, "/socketio/upstreams/"+drained.Addr+"/drain")
	require.Equal(t, http.StatusOK, status, body)
	assert.Contains(t, body, `"draining":false`)
	again := testenv.RunProbe(t, testenv.ProbeOptions{URL: url, Sessions: 20, Echoes: 1})
	require.Empty(t, again.Failures)
	assert.Positive(t, again.Workers[drained.Name], "undrained, it takes sessions again: %v", again.Workers)

	status, body = adminDo(t, edge, http.MethodPost, "/socketio/upstreams/127.0.0.1:1/drain")
	assert.Equal(t, http.StatusNotFound, status, body)
	assert.Contains(t, edge.Output(), "Socket.IO worker draining")
}

// A worker whose health check answers the drain status (410) while it
// shuts down is drained, not unhealthy: its sessions go on; it takes new
// sessions again once it answers 200.
func TestHealthDrainStatusDrainsTheWorker(t *testing.T) {
	url, edge, workers := drainStack(t, "\t\thealth_uri /healthz\n\t\thealth_interval 200ms")
	_ = url
	drained := workers[0]
	require.NoError(t, drained.SetDraining(true))
	require.Eventually(t, func() bool {
		_, body := adminDo(t, edge, http.MethodGet, "/socketio/upstreams")
		return strings.Contains(body, fmt.Sprintf(`"address":%q,"healthy":true,"draining":true`, drained.Addr))
	}, 10*time.Second, 50*time.Millisecond)
	fresh := testenv.RunProbe(t, testenv.ProbeOptions{URL: url, Sessions: 10, Echoes: 1})
	require.Empty(t, fresh.Failures)
	assert.Equal(t, map[string]int{workers[1].Name: 10}, fresh.Workers)
	require.NoError(t, drained.SetDraining(false))
	require.Eventually(t, func() bool {
		_, body := adminDo(t, edge, http.MethodGet, "/socketio/upstreams")
		return strings.Contains(body, fmt.Sprintf(`"address":%q,"healthy":true,"draining":false`, drained.Addr))
	}, 10*time.Second, 50*time.Millisecond)
}
