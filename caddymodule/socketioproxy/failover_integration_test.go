package socketioproxy_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// How fast a session of a killed worker must learn of it, and how long
// its client may take to be back on the survivor, counted from the
// worker's death (its process reaped, its sockets closed).
//
// Both are times the client records, and a client whose event loop was
// held up records late, whatever the edge did: on a busy two-core
// machine the probe's event loop stalls for 50-500ms at times. So the
// bounds are stretched by the longest stall the probe measured during
// the run, and the test logs both.
const (
	failoverErrorWithin  = 100 * time.Millisecond
	reconnectionDelay    = 500 * time.Millisecond
	reconnectionDelayMax = 1000 * time.Millisecond
	reconnectWithin      = reconnectionDelayMax + time.Second
)

// Killing a worker (SIGKILL, as a crash) while 200 sessions, a third on
// each transport, echo every second: each of its sessions gets the
// Engine.IO error within 100ms and its client reconnects onto the
// survivor and echoes there; no session on the survivor notices
// anything, and no reconnection attempt fails, as one the edge sent to
// the dead worker would. (Here the polling sessions' failed requests take
// the worker out of rotation at once. With WebSocket sessions alone
// nothing does, and the first handshake after the kill still goes to the
// dead worker and gets a 502: the end of a relay does not mark a worker
// down.)
//
// The survivor must carry the traffic alone: at an echo every 200ms per
// session, two eventlet workers on two cores are saturated (echo round
// trips of 200-700ms at the median before the kill) and the test would
// measure the queue in front of the survivor, not the failover.
func TestSessionsOfAKilledWorkerFailOverToTheSurvivor(t *testing.T) {
	urls, workers := startPool(t, 1)
	probe := testenv.StartProbe(t, testenv.ProbeOptions{
		URL:          urls[0],
		TransportMix: [][]string{{"polling"}, {"websocket"}, nil},
		Sessions:     200,
		Echoes:       1, // so each session's first worker is known at ready
		UpgradeWait:  true,
		TimeoutMs:    60000,

		KeepAlive:            true,
		Reconnection:         true,
		ReconnectionDelay:    int(reconnectionDelay.Milliseconds()),
		ReconnectionDelayMax: int(reconnectionDelayMax.Milliseconds()),
		DurationMs:           4000,
		IntervalMs:           1000,
	})
	killed := time.Now()
	workers[0].Kill()
	died := time.Now()
	res := probe.Wait()

	require.Empty(t, res.Failures, "sessions that were not ready before the kill")
	require.Len(t, res.Timelines, 200)
	dead, survivor := workers[0].Name, workers[1].Name
	stall := time.Duration(res.EventLoopDelayMs.Max * float64(time.Millisecond))
	k := kill{signalled: killed, died: died, errorWithin: failoverErrorWithin + stall, backWithin: reconnectWithin + stall}
	figures := map[string]*failoverFigures{}
	for _, tl := range res.Timelines {
		name := "default"
		if tl.Transports != nil {
			name = strings.Join(tl.Transports, "+")
		}
		if figures[name] == nil {
			figures[name] = &failoverFigures{reasons: map[string]int{}}
		}
		checkFailover(t, tl, dead, survivor, k, figures[name])
	}
	for _, name := range []string{"polling", "websocket", "default"} {
		f := figures[name]
		assert.Positive(t, f.onDead, "%s: no session was on the killed worker", name)
		assert.Positive(t, f.onSurvivor, "%s: no session was on the survivor", name)
		t.Logf("%-9s %d sessions on %s (killed), %d on %s; death → error: max %v (%s); death → reconnected on %s: max %v; "+
			"%d echoes cut off by the kill, %d acks after reconnecting; %d failed (re)connection attempts",
			name+":", f.onDead, dead, f.onSurvivor, survivor, f.maxError.Round(time.Millisecond/10), reasonList(f.reasons),
			survivor, f.maxBack.Round(time.Millisecond), f.cutOff, f.acksAfter, f.connectErrors)
	}
	t.Logf("SIGKILL → worker reaped: %v; probe event-loop delay: %+v ms; echo round trips: %+v ms",
		died.Sub(killed).Round(time.Millisecond/10), *res.EventLoopDelayMs, res.LatencyMs)
}

// kill is when the worker was killed and the bounds on its sessions.
type kill struct {
	signalled, died         time.Time
	errorWithin, backWithin time.Duration // from died
}

// failoverFigures sums up the sessions of one transport.
type failoverFigures struct {
	onDead, onSurvivor int
	maxError, maxBack  time.Duration
	reasons            map[string]int // disconnect reason → sessions
	cutOff, acksAfter  int
	connectErrors      int
}

// checkFailover checks one session's timeline against the kill of worker
// dead.
func checkFailover(t *testing.T, tl testenv.ProbeTimeline, dead, survivor string, k kill, f *failoverFigures) {
	t.Helper()
	s := fmt.Sprintf("session %d (%v)", tl.Session, tl.Transports)
	if !assert.NotEmpty(t, tl.Connects, "%s never connected", s) {
		return
	}
	for _, c := range tl.Connects[1:] {
		assert.Equal(t, survivor, c.Worker, "%s: a connection after the kill was answered by %q", s, c.Worker)
	}
	f.connectErrors += len(tl.ConnectErrors)
	for _, e := range tl.ConnectErrors {
		// A handshake the edge sends to the dead worker fails, and the
		// client reports a failed reconnection attempt.
		assert.Failf(t, "failed (re)connection attempt", "%s: %s, at death%+v", s, e.Error, e.At.Time().Sub(k.died))
	}

	switch tl.FirstWorker() {
	case survivor:
		f.onSurvivor++
		assert.Empty(t, tl.Disconnects, "%s on the survivor was disconnected", s)
		assert.Empty(t, tl.EchoFailures, "%s on the survivor had failed echoes", s)
		assert.Equal(t, []string{survivor}, tl.Workers, s)
		assert.Len(t, tl.Connects, 1, s)

	case dead:
		f.onDead++
		if !assert.Len(t, tl.Disconnects, 1, "%s on the killed worker: want one disconnect", s) ||
			!assert.Len(t, tl.Connects, 2, "%s on the killed worker: want one reconnection", s) {
			return
		}
		d, back := tl.Disconnects[0], tl.Connects[1]
		toError, toBack := d.At.Time().Sub(k.died), back.At.Time().Sub(k.died)
		f.reasons[d.Reason]++
		f.maxError, f.maxBack = max(f.maxError, toError), max(f.maxBack, toBack)
		assert.False(t, d.At.Time().Before(k.signalled), "%s disconnected before the kill", s)
		assert.LessOrEqual(t, toError, k.errorWithin, "%s learnt of the worker's death after %v (%s)", s, toError, d.Reason)
		assert.LessOrEqual(t, toBack, k.backWithin, "%s reconnected %v after the worker's death", s, toBack)
		assert.Positive(t, back.Acks, "%s echoed nothing after reconnecting", s)
		f.acksAfter += back.Acks
		for _, e := range tl.EchoFailures {
			// Only the echo in flight at the kill may fail.
			if e.At.Time().Before(k.signalled) || e.At.Time().After(back.At.Time()) {
				assert.Failf(t, "echo failed", "%s: echo %d at death%+v: %s", s, e.Seq, e.At.Time().Sub(k.died), e.Error)
			} else {
				f.cutOff++
			}
		}

	default:
		assert.Failf(t, "no first worker", "%s: first connection answered by %q", s, tl.FirstWorker())
	}
}

func reasonList(reasons map[string]int) string {
	var parts []string
	for r, n := range reasons {
		parts = append(parts, fmt.Sprintf("%s ×%d", r, n))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}
