package flaskedge_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// scripts/rolling-deploy.sh restarts both workers one after the other
// under live sessions on both transports: it drains each on the edge,
// waits for its sessions to move (drain_timeout), restarts it, waits for
// its health and undrains it. No session fails beyond the echoes in
// flight when its worker let it go, every session of a restarted worker
// is back on the other one within the client's reconnection delay plus a
// second, no reconnection attempt fails, and no session ends.
func TestRollingDeployLosesNothing(t *testing.T) {
	testenv.RequireNode(t)
	redis := testenv.StartRedis(t)
	opts := map[string]testenv.FlaskOptions{}
	workers := map[string]*testenv.FlaskWorker{}
	var addrs []string
	for _, name := range []string{"A", "B"} {
		o := testenv.FlaskOptions{Name: name, SecretKey: "deploy-secret", RedisURL: "redis://" + redis}
		w := testenv.StartFlaskWorker(t, o)
		o.Port = mustPort(t, w.Addr)
		opts[w.Addr], workers[w.Addr] = o, w
		addrs = append(addrs, w.Addr)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	edge := testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%s {
	bind 127.0.0.1
	socketio_proxy {
		to %s %s
		sticky_secret deploy-sticky-secret-0123456789
		health_uri /healthz
		health_interval 500ms
		drain_timeout 3s
	}
}
`, addr, addrs[0], addrs[1])), addr)

	// The restart command asks the test, which owns the worker processes,
	// to stop one and start it again on its port.
	restarts := make(chan string)
	restarted := make(chan struct{})
	control := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		restarts <- r.URL.Query().Get("addr")
		<-restarted
	}))
	defer control.Close()

	const (
		delay    = 500 * time.Millisecond
		delayMax = 1000 * time.Millisecond
	)
	probe := testenv.StartProbe(t, testenv.ProbeOptions{
		URL:          "http://" + addr,
		TransportMix: [][]string{{"polling"}, {"websocket"}, nil},
		Sessions:     60,
		Echoes:       1,
		UpgradeWait:  true,
		TimeoutMs:    120000,
		KeepAlive:    true,
		Reconnection: true,

		ReconnectionDelay:    int(delay.Milliseconds()),
		ReconnectionDelayMax: int(delayMax.Milliseconds()),
		DurationMs:           50000,
		IntervalMs:           1000,
	})

	script := exec.Command("scripts/rolling-deploy.sh", "-a", edge.AdminAddr,
		"-r", "curl -fsS '"+control.URL+"/?addr={addr}'", "-w", "20", addrs[0], addrs[1])
	var out bytes.Buffer
	script.Stdout, script.Stderr = &out, &out
	require.NoError(t, script.Start())
	done := make(chan error, 1)
	go func() { done <- script.Wait() }()
	restartedAt := map[string]time.Time{}
	for finished := false; !finished; {
		select {
		case a := <-restarts:
			workers[a].Kill()
			restartedAt[a] = time.Now()
			workers[a] = testenv.StartFlaskWorker(t, opts[a])
			restarted <- struct{}{}
		case err := <-done:
			require.NoError(t, err, out.String())
			finished = true
		}
	}
	t.Logf("rolling-deploy.sh:\n%s", out.String())
	require.Len(t, restartedAt, 2, "both workers restarted")

	res := probe.Wait()
	require.Empty(t, res.Failures)
	moved, inFlight := 0, 0
	for _, tl := range res.Timelines {
		assert.Empty(t, tl.ConnectErrors, "session %d: a reconnection went to a drained or restarting worker", tl.Session)
		for i, d := range tl.Disconnects {
			require.Greater(t, len(tl.Connects), i+1, "session %d ended with its worker (%s)", tl.Session, d.Reason)
			back := tl.Connects[i+1].At.Time().Sub(d.At.Time())
			assert.Less(t, back, delayMax+time.Second, "session %d back after %v", tl.Session, back)
			moved++
		}
	echoes:
		for _, f := range tl.EchoFailures {
			for _, d := range tl.Disconnects {
				if dt := f.At.Time().Sub(d.At.Time()); dt > -time.Second && dt < 6*time.Second {
					inFlight++
					continue echoes
				}
			}
			assert.Fail(t, "an echo failed away from any reconnection", "session %d: %+v", tl.Session, f)
		}
	}
	assert.Positive(t, moved, "no session was moved by the deploy")
	t.Logf("60 sessions: %d moved to another worker, %d echoes lost in flight at a move; echo round trips %+v ms",
		moved, inFlight, res.LatencyMs)
}

func mustPort(t *testing.T, addr string) int {
	t.Helper()
	var port int
	_, err := fmt.Sscanf(addr[strings.LastIndex(addr, ":")+1:], "%d", &port)
	require.NoError(t, err)
	return port
}

// BenchmarkRollingDeploy measures what a deploy costs clients: both
// workers restarted one after the other under 1,000 live sessions (a
// third polling, a third WebSocket, a third upgrading), each
// acknowledging an echo a second, behind the edge (drained with
// scripts/rolling-deploy.sh, drain_timeout 20s) and behind stock Caddy
// reverse_proxy with lb_policy ip_hash (restarted the same way, with no
// drain to ask for). It reports failed acknowledgements, sessions that
// reconnected, the longest gap a client saw, and failed (re)connection
// attempts (a 5xx, or a 400 "Session ID unknown" storm, shows there).
// Run with -benchtime 1x; see docs/BENCHMARKS.md.
func BenchmarkRollingDeploy(b *testing.B) {
	for _, front := range []string{"edge", "caddy"} {
		b.Run(front, func(b *testing.B) {
			for range b.N {
				rollingDeployRun(b, front, 1000)
			}
		})
	}
}

func rollingDeployRun(b *testing.B, front string, sessions int) {
	testenv.RequireNode(b)
	redis := testenv.StartRedis(b)
	opts := map[string]testenv.FlaskOptions{}
	workers := map[string]*testenv.FlaskWorker{}
	var addrs []string
	for _, name := range []string{"A", "B"} {
		o := testenv.FlaskOptions{Name: name, SecretKey: "deploy-secret", RedisURL: "redis://" + redis}
		w := testenv.StartFlaskWorker(b, o)
		var port int
		_, _ = fmt.Sscanf(w.Addr[strings.LastIndex(w.Addr, ":")+1:], "%d", &port)
		o.Port = port
		opts[w.Addr], workers[w.Addr] = o, w
		addrs = append(addrs, w.Addr)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b))
	site := fmt.Sprintf(`	socketio_proxy {
		to %s %s
		sticky_secret deploy-sticky-secret-0123456789
		health_uri /healthz
		health_interval 500ms
		drain_timeout 20s
	}`, addrs[0], addrs[1])
	if front == "caddy" {
		site = fmt.Sprintf(`	reverse_proxy %s %s {
		lb_policy ip_hash
		health_uri /healthz
		health_interval 500ms
	}`, addrs[0], addrs[1])
	}
	edge := testenv.StartEdge(b, testenv.EdgeConfig(fmt.Sprintf("{{admin}}\nhttp://%s {\n\tbind 127.0.0.1\n%s\n}\n", addr, site)), addr)

	probe := testenv.StartProbe(b, testenv.ProbeOptions{
		URL:                  "http://" + addr,
		TransportMix:         [][]string{{"polling"}, {"websocket"}, nil},
		Sessions:             sessions,
		Echoes:               1,
		UpgradeWait:          true,
		TimeoutMs:            180000,
		KeepAlive:            true,
		Reconnection:         true,
		ReconnectionDelay:    500,
		ReconnectionDelayMax: 1000,
		DurationMs:           90000,
		IntervalMs:           1000,
	})
	restart := func(a string) {
		workers[a].Kill()
		workers[a] = testenv.StartFlaskWorker(b, opts[a])
	}
	start := time.Now()
	if front == "edge" {
		restarts := make(chan string)
		restarted := make(chan struct{})
		control := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			restarts <- r.URL.Query().Get("addr")
			<-restarted
		}))
		defer control.Close()
		script := exec.Command("scripts/rolling-deploy.sh", "-a", edge.AdminAddr,
			"-r", "curl -fsS '"+control.URL+"/?addr={addr}'", "-w", "40", addrs[0], addrs[1])
		var out bytes.Buffer
		script.Stdout, script.Stderr = &out, &out
		if err := script.Start(); err != nil {
			b.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- script.Wait() }()
		for finished := false; !finished; {
			select {
			case a := <-restarts:
				restart(a)
				restarted <- struct{}{}
			case err := <-done:
				if err != nil {
					b.Fatalf("rolling-deploy.sh: %v\n%s", err, out.String())
				}
				finished = true
			}
		}
	} else {
		for _, a := range addrs {
			restart(a)
		}
	}
	deploy := time.Since(start)
	res := probe.Wait()

	var failedAcks, awayFromMoves, reconnected, connectErrors, sessionLost int
	var longest time.Duration
	reasons := map[string]int{}
	for _, tl := range res.Timelines {
		failedAcks += len(tl.EchoFailures)
	acks:
		for _, f := range tl.EchoFailures {
			// In flight when its session moved: sent up to the ack
			// timeout (5 s) before the disconnect, or before the
			// reconnection.
			for _, d := range tl.Disconnects {
				if dt := f.At.Time().Sub(d.At.Time()); dt > -time.Second && dt < 6*time.Second {
					continue acks
				}
			}
			awayFromMoves++
		}
		connectErrors += len(tl.ConnectErrors)
		if len(tl.Disconnects) > 0 {
			reconnected++
		}
		for i, d := range tl.Disconnects {
			reasons[d.Reason]++
			if len(tl.Connects) <= i+1 {
				sessionLost++
				continue
			}
			longest = max(longest, tl.Connects[i+1].At.Time().Sub(d.At.Time()))
		}
	}
	b.ReportMetric(float64(failedAcks), "failed-acks")
	b.ReportMetric(float64(awayFromMoves), "failed-acks-not-in-flight")
	b.ReportMetric(float64(reconnected), "sessions-reconnected")
	b.ReportMetric(float64(longest.Milliseconds()), "longest-gap-ms")
	b.ReportMetric(float64(connectErrors), "failed-connects")
	b.Logf("%s: %d sessions, deploy took %v; %d failed acks (%d of them not in flight at a move), %d sessions reconnected (%d never came back), longest gap %v, %d failed (re)connection attempts, disconnect reasons %v, failures %d, echo round trips %+v ms",
		front, sessions, deploy.Round(time.Millisecond), failedAcks, awayFromMoves, reconnected, sessionLost, longest.Round(time.Millisecond),
		connectErrors, reasons, len(res.Failures), res.LatencyMs)
}
