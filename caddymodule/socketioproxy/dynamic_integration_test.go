package socketioproxy_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// Workers from a dynamic source (here the file source) come and go while
// 200 sessions are live, without a reload: a worker added takes the new
// sessions (least_sessions), and when the first one leaves the file its
// sessions are closed and reconnect to the other within the client's
// reconnection delay plus a second; no request is ever routed to a
// worker other than its session's.
func TestDynamicWorkersComeAndGo(t *testing.T) {
	testenv.RequireNode(t)
	redis := testenv.StartRedis(t)
	var workers []*testenv.FlaskWorker
	for _, name := range []string{"A", "B"} {
		workers = append(workers, testenv.StartFlaskWorker(t, testenv.FlaskOptions{
			Name: name, SecretKey: "dynamic-secret", RedisURL: "redis://" + redis,
		}))
	}
	a, b := workers[0], workers[1]
	list := filepath.Join(t.TempDir(), "workers")
	write := func(addrs ...string) {
		t.Helper()
		tmp := list + ".new"
		require.NoError(t, os.WriteFile(tmp, []byte("# the Socket.IO workers\n"+strings.Join(addrs, "\n")+"\n"), 0o600))
		require.NoError(t, os.Rename(tmp, list)) // as a deploy tool replaces it
	}
	write(a.Addr)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	edge := testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%s {
	bind 127.0.0.1
	socketio_proxy {
		dynamic file %s {
			refresh 100ms
		}
		sticky_secret %s
	}
}
`, addr, list, stickySecret)), addr)
	url := "http://" + addr

	probe := testenv.StartProbe(t, testenv.ProbeOptions{
		URL:          url,
		TransportMix: [][]string{{"polling"}, {"websocket"}, nil},
		Sessions:     200,
		Echoes:       1,
		UpgradeWait:  true,
		TimeoutMs:    60000,
		KeepAlive:    true,
		Reconnection: true,

		ReconnectionDelay:    int(reconnectionDelay.Milliseconds()),
		ReconnectionDelayMax: int(reconnectionDelayMax.Milliseconds()),
		DurationMs:           9000,
		IntervalMs:           1000,
	})

	write(a.Addr, b.Addr)
	require.Eventually(t, func() bool {
		_, body := adminDo(t, edge, http.MethodGet, "/socketio/upstreams")
		return strings.Contains(body, b.Addr)
	}, 10*time.Second, 50*time.Millisecond, "the edge never took the added worker")
	fresh := testenv.RunProbe(t, testenv.ProbeOptions{URL: url, Sessions: 20, Echoes: 1})
	require.Empty(t, fresh.Failures)
	assert.Equal(t, map[string]int{b.Name: 20}, fresh.Workers, "the added worker, with no sessions, takes the new ones")

	write(b.Addr)
	removed := time.Now()
	res := probe.Wait()
	require.Empty(t, res.Failures)
	require.Len(t, res.Timelines, 200)
	moved := 0
	for _, tl := range res.Timelines {
		require.Equal(t, a.Name, tl.FirstWorker(), "session %d began on the only worker listed", tl.Session)
		require.NotEmpty(t, tl.Disconnects, "session %d stayed on the worker that left", tl.Session)
		cut := tl.Disconnects[0].At.Time()
		assert.WithinDuration(t, removed, cut, 2*time.Second, "session %d closed when its worker left (%s)", tl.Session, tl.Disconnects[0].Reason)
		require.GreaterOrEqual(t, len(tl.Connects), 2, "session %d did not reconnect", tl.Session)
		assert.Equal(t, b.Name, tl.Connects[1].Worker, "session %d reconnected to the worker that is listed", tl.Session)
		assert.Less(t, tl.Connects[1].At.Time().Sub(cut), reconnectWithin, "session %d back within the reconnect delay plus a second", tl.Session)
		assert.Empty(t, tl.ConnectErrors, "session %d: a reconnection failed", tl.Session)
		for _, f := range tl.EchoFailures {
			assert.NotContains(t, f.Error, "ack from worker", "session %d was routed to another worker", tl.Session)
		}
		moved++
	}
	t.Logf("%d sessions moved from %s to %s when it left the file; echo round trips %+v ms", moved, a.Name, b.Name, res.LatencyMs)
}
