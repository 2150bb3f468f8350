package socketioproxy_test

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// Once every session has closed, on every transport, the edge runs no
// more goroutines than before the first one: nothing a session started
// (relay, long-poll, handler) outlives it. The edge is a separate
// process, so goleak cannot look inside it; its admin endpoint's
// goroutine profile can.
func TestEdgeGoroutinesReturnToBaselineAfterEverySessionCloses(t *testing.T) {
	testenv.RequireNode(t)
	var workers []*testenv.FlaskWorker
	for _, name := range []string{"A", "B"} {
		workers = append(workers, testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: name, SecretKey: "leak-secret"}))
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	edge := testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%s {
	bind 127.0.0.1
	socketio_proxy {
		to %s %s
	}
}
`, addr, workers[0].Addr, workers[1].Addr)), addr)
	mix := [][]string{{"polling"}, {"websocket"}, nil} // nil: polling, then upgrade
	run := func(sessions int) {
		t.Helper()
		res := testenv.RunProbe(t, testenv.ProbeOptions{
			URL: "http://" + addr, TransportMix: mix, Sessions: sessions,
			Echoes: 3, UpgradeWait: true, TimeoutMs: 60000,
		})
		require.Empty(t, res.Failures)
		require.Equal(t, sessions, res.Completed)
	}

	// A first session of each kind, so that what the edge starts once
	// (its upstream connection pool, lazily started runtime helpers)
	// is part of the baseline.
	run(len(mix))
	baseline := settledGoroutines(t, edge.AdminAddr, -1)

	// The probe exits when its sessions are done, which closes them all.
	probe := testenv.StartProbe(t, testenv.ProbeOptions{
		URL: "http://" + addr, TransportMix: mix, Sessions: 150,
		Echoes: 1, UpgradeWait: true, TimeoutMs: 60000,
		DurationMs: 2000, IntervalMs: 200,
	})
	// The sessions are live at the edge, or the count after they close
	// would prove nothing.
	require.Eventually(t, func() bool {
		return sum(scrape(t, edge.AdminAddr), `^caddy_socketio_sessions\{`) >= 100
	}, 30*time.Second, 50*time.Millisecond, "the sessions never were live at once")
	during, _ := sessionGoroutines(t, edge.AdminAddr)
	res := probe.Wait()
	require.Empty(t, res.Failures)
	require.Equal(t, 150, res.Completed)

	after := settledGoroutines(t, edge.AdminAddr, baseline)
	t.Logf("edge goroutines: baseline %d, with 150 sessions %d, after they closed %d", baseline, during, after)
}

// settledGoroutines waits until the edge's goroutine count (see
// sessionGoroutines) is at most want, or, with want < 0, until it stops
// changing, and returns it. It fails the test with the goroutine profile
// if the count stays above want for 15 s: the sessions' clients have
// closed, so the edge has learnt of every close by then (Engine.IO's
// ping timeout, 20 s, is not involved: closing clients say so).
func settledGoroutines(t *testing.T, admin string, want int) int {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	prev := -1
	for {
		n, profile := sessionGoroutines(t, admin)
		if (want >= 0 && n <= want) || (want < 0 && n == prev) {
			return n
		}
		if time.Now().After(deadline) {
			if want < 0 {
				return n
			}
			t.Fatalf("the edge runs %d goroutines 15s after every session closed, %d before the first opened; profile:\n%s", n, want, profile)
		}
		prev = n
		time.Sleep(500 * time.Millisecond)
	}
}

// sessionGoroutines counts the edge's goroutines from its admin
// endpoint's goroutine profile, leaving out the kept connections of the
// health checks' net/http Transport (its persistConn read and write
// loops), which outlive any session by design. (Polling's own kept
// connections hold no goroutine: see h1client.) It returns the profile
// too.
func sessionGoroutines(t *testing.T, admin string) (int, string) {
	t.Helper()
	res, err := http.Get("http://" + admin + "/debug/pprof/goroutine?debug=1")
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	var profile strings.Builder
	total := 0
	count, pooled := 0, false
	flush := func() {
		if !pooled {
			total += count
		}
		count, pooled = 0, false
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		profile.WriteString(line + "\n")
		switch {
		case line == "":
			flush()
		case strings.HasPrefix(line, "goroutine profile:"):
		case !strings.HasPrefix(line, "#"):
			// "N @ 0x... 0x...": a group of N goroutines with one stack.
			n, _, _ := strings.Cut(line, " ")
			count, _ = strconv.Atoi(n)
		case strings.Contains(line, "net/http.(*persistConn).readLoop"),
			strings.Contains(line, "net/http.(*persistConn).writeLoop"):
			pooled = true
		}
	}
	require.NoError(t, sc.Err())
	flush()
	return total, profile.String()
}
