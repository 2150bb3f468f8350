package socketioproxy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

func TestScratchPollingKill(t *testing.T) {
	testenv.RequireNode(t)
	redis := testenv.StartRedis(t)
	var workers []*testenv.FlaskWorker
	for _, name := range []string{"A", "B"} {
		workers = append(workers, testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: name, SecretKey: "pool-secret", RedisURL: "redis://" + redis}))
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	edge := testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%s {
	bind 127.0.0.1
	log {
		level DEBUG
	}
	socketio_proxy {
		to %s %s
		sticky_secret %s
	}
}
`, addr, workers[0].Addr, workers[1].Addr, stickySecret)), addr)
	n := 200
	if s := os.Getenv("SCRATCH_N"); s != "" {
		fmt.Sscan(s, &n)
	}
	tr := []string{"polling"}
	if os.Getenv("SCRATCH_WS") != "" {
		tr = []string{"websocket"}
	}
	probe := testenv.StartProbe(t, testenv.ProbeOptions{URL: "http://" + addr, Transports: tr, Sessions: n, Echoes: 1, TimeoutMs: 60000,
		Reconnection: true, ReconnectionDelay: 500, ReconnectionDelayMax: 1000, DurationMs: 3000, IntervalMs: 200})
	killed := time.Now()
	workers[0].Kill()
	res := probe.Wait()
	var d []float64
	for _, tl := range res.Timelines {
		if tl.FirstWorker() == "A" && len(tl.Disconnects) > 0 {
			d = append(d, float64(tl.Disconnects[0].At.Time().Sub(killed).Microseconds())/1000)
		}
	}
	sort.Float64s(d)
	t.Logf("client disconnects after kill (ms): %v", d)
	t.Logf("loop delay %+v latency %+v", res.EventLoopDelayMs, res.LatencyMs)
	// edge log: ts of refusals/unreachable after the kill
	var e []string
	var last400 time.Duration
	n400 := 0
	for _, line := range strings.Split(edge.Output(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		ts, _ := m["ts"].(float64)
		at := time.UnixMicro(int64(ts * 1e6))
		if at.Before(killed) {
			continue
		}
		if st, _ := m["status"].(float64); st == 400 {
			last400 = at.Sub(killed)
			n400++
		}
		e = append(e, fmt.Sprintf("%.1f %v %v %v", float64(at.Sub(killed).Microseconds())/1000, m["msg"], m["reason"], m["error"]))
	}
	t.Logf("edge: %d 400s, last at %v", n400, last400)
	if len(e) > 60 {
		e = e[:60]
	}
	t.Logf("edge after kill:\n%s", strings.Join(e, "\n"))
}
