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
// its client may then take to be back, on the survivor.
const (
	failoverErrorWithin  = 100 * time.Millisecond
	reconnectionDelay    = 500 * time.Millisecond
	reconnectionDelayMax = 1000 * time.Millisecond
	reconnectWithin      = reconnectionDelayMax + time.Second
)

// Killing a worker (SIGKILL, as a crash) while 200 sessions echo every
// 200ms: each of its sessions gets the Engine.IO error within 100ms and
// its client reconnects onto the survivor and echoes there; no session on
// the survivor notices anything, and no handshake after the kill is sent
// to the dead worker.
func TestSessionsOfAKilledWorkerFailOverToTheSurvivor(t *testing.T) {
	for _, tc := range []struct {
		name       string
		transports []string
	}{
		{"polling", []string{"polling"}},
		{"websocket", []string{"websocket"}},
		{"default", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			urls, workers := startPool(t, 1)
			probe := testenv.StartProbe(t, testenv.ProbeOptions{
				URL:         urls[0],
				Transports:  tc.transports,
				Sessions:    200,
				Echoes:      1, // so each session's first worker is known at ready
				UpgradeWait: tc.transports == nil,
				TimeoutMs:   60000,

				Reconnection:         true,
				ReconnectionDelay:    int(reconnectionDelay.Milliseconds()),
				ReconnectionDelayMax: int(reconnectionDelayMax.Milliseconds()),
				DurationMs:           4000,
				IntervalMs:           200,
			})
			killed := time.Now()
			workers[0].Kill()
			res := probe.Wait()

			require.Empty(t, res.Failures, "sessions that were not ready before the kill")
			require.Len(t, res.Timelines, 200)
			checkFailover(t, res.Timelines, workers[0].Name, workers[1].Name, killed)
		})
	}
}

// checkFailover checks every session's timeline against a kill of worker
// dead at killed, and logs the figures.
func checkFailover(t *testing.T, timelines []testenv.ProbeTimeline, dead, survivor string, killed time.Time) {
	t.Helper()
	var (
		onDead, onSurvivor  int
		maxError, maxBack   time.Duration
		reasons             = map[string]int{}
		cutOff, failedAgain int
		handshakesAfterKill int
		acksAfterReconnect  int
	)
	for _, tl := range timelines {
		s := fmt.Sprintf("session %d", tl.Session)
		for _, c := range tl.Connects {
			if c.At.Time().After(killed) {
				handshakesAfterKill++
				assert.Equal(t, survivor, c.Worker, "%s: a connection after the kill was answered by %q", s, c.Worker)
			}
		}
		failedAgain += len(tl.ConnectErrors)
		for _, e := range tl.ConnectErrors {
			// A handshake the edge sends to the dead worker fails: the
			// client sees it as a failed reconnection attempt.
			assert.Failf(t, "failed (re)connection attempt", "%s: %s at kill%+v", s, e.Error, e.At.Time().Sub(killed))
		}

		switch tl.FirstWorker() {
		case survivor:
			onSurvivor++
			assert.Empty(t, tl.Disconnects, "%s on the survivor was disconnected", s)
			assert.Empty(t, tl.EchoFailures, "%s on the survivor had failed echoes", s)
			assert.Equal(t, []string{survivor}, tl.Workers, s)
			assert.Len(t, tl.Connects, 1, s)

		case dead:
			onDead++
			if !assert.Len(t, tl.Disconnects, 1, "%s on the killed worker: want one disconnect", s) ||
				!assert.Len(t, tl.Connects, 2, "%s on the killed worker: want one reconnection", s) {
				continue
			}
			d, back := tl.Disconnects[0], tl.Connects[1]
			toError, toBack := d.At.Time().Sub(killed), back.At.Time().Sub(killed)
			reasons[d.Reason]++
			maxError, maxBack = max(maxError, toError), max(maxBack, toBack)
			assert.GreaterOrEqual(t, toError, time.Duration(0), "%s disconnected before the kill", s)
			assert.LessOrEqual(t, toError, failoverErrorWithin, "%s learnt of the kill after %v (%s)", s, toError, d.Reason)
			assert.LessOrEqual(t, toBack, reconnectWithin, "%s reconnected %v after the kill", s, toBack)
			assert.Equal(t, survivor, back.Worker, "%s reconnected onto %q", s, back.Worker)
			assert.Positive(t, back.Acks, "%s echoed nothing after reconnecting", s)
			acksAfterReconnect += back.Acks
			for _, f := range tl.EchoFailures {
				// Only the echo in flight at the kill may fail.
				if f.At.Time().Before(killed) || f.At.Time().After(back.At.Time()) {
					assert.Failf(t, "echo failed", "%s: echo %d at kill%+v: %s", s, f.Seq, f.At.Time().Sub(killed), f.Error)
				} else {
					cutOff++
				}
			}

		default:
			assert.Failf(t, "no first worker", "%s: first connection answered by %q", s, tl.FirstWorker())
		}
	}
	assert.Positive(t, onDead, "no session was on the killed worker")
	assert.Positive(t, onSurvivor, "no session was on the survivor")
	t.Logf("%d sessions on %s (killed), %d on %s; kill → Engine.IO error: max %v (%v); kill → reconnected on %s: max %v; "+
		"%d handshakes after the kill, %d failed attempts; %d echoes cut off by the kill, %d acks after reconnecting",
		onDead, dead, onSurvivor, survivor, maxError.Round(time.Millisecond/10), reasonList(reasons), survivor,
		maxBack.Round(time.Millisecond), handshakesAfterKill, failedAgain, cutOff, acksAfterReconnect)
}

func reasonList(reasons map[string]int) string {
	var parts []string
	for r, n := range reasons {
		parts = append(parts, fmt.Sprintf("%s ×%d", r, n))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}
