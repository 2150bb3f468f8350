package testenv_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// StartProbe returns once every session is connected, so the test can act
// at that moment; the long run's timelines then put what followed on the
// test's own clock.
func TestStartProbeIsReadyBeforeAKillAndTimesWhatFollows(t *testing.T) {
	w := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "solo"})
	probe := testenv.StartProbe(t, testenv.ProbeOptions{
		URL:                  w.URL(),
		TransportMix:         [][]string{{"polling"}, {"websocket"}},
		Sessions:             4,
		Echoes:               1,
		Reconnection:         true,
		ReconnectionDelay:    100,
		ReconnectionDelayMax: 200,
		DurationMs:           1500,
		IntervalMs:           100,
	})
	killed := time.Now()
	w.Kill()
	res := probe.Wait()

	require.Empty(t, res.Failures)
	require.Len(t, res.Timelines, 4)
	require.NotNil(t, res.EventLoopDelayMs)
	for _, tl := range res.Timelines {
		require.Len(t, tl.Connects, 1, "session %d: only the worker's own connection, no reconnection to a dead worker", tl.Session)
		c := tl.Connects[0]
		assert.Equal(t, "solo", tl.FirstWorker())
		assert.Positive(t, c.Acks)
		assert.NotEmpty(t, c.SID)
		assert.Equal(t, tl.Transports[0], c.Transport)
		assert.True(t, c.At.Time().Before(killed), "session %d connected after ready", tl.Session)

		require.Len(t, tl.Disconnects, 1, "session %d", tl.Session)
		d := tl.Disconnects[0]
		assert.WithinRange(t, d.At.Time(), killed, killed.Add(5*time.Second), "session %d", tl.Session)
		want := map[string]string{"polling": "transport error", "websocket": "transport close"}[c.Transport]
		assert.Equal(t, want, d.Reason, "session %d", tl.Session)
		assert.NotEmpty(t, tl.ConnectErrors, "session %d: its reconnection attempts fail", tl.Session)
	}
}
