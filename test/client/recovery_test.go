package client

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// Connection state recovery (socket.io 4.6+'s connectionStateRecovery,
// whose client half socket.io-client 4.8.4 carries) at the edge, with the
// official client in Node (recover.mjs): the client's network is a
// testenv.NetCut in front of the edge, cut while a worker streams numbered
// events to it. The edge keeps the worker's session through the cut and
// the client takes it up again where it was.

var recoveryTransports = []struct {
	name       string
	transports []string
}{
	{"polling", []string{"polling"}},
	{"websocket", []string{"websocket"}},
	{"default", nil}, // polling, then the upgrade to websocket
}

const (
	streamLength   = 100
	streamInterval = 30 // ms: the stream lasts 3s, all of it while offline
)

func recoveryConfig(url string, transports []string) testenv.RecoveryConfig {
	return testenv.RecoveryConfig{URL: url, Transports: transports, N: streamLength, IntervalMs: streamInterval, TimeoutMs: 60_000}
}

// The client script, held against the implementation it was written for:
// cut for 5s inside a 10s window, the Node server recovers the session
// (same socket id, socket.recovered, every stored event once and in
// order); cut for 4s beyond a 2s window, the client gets a new session
// and a whole new stream on it. The Node server does not store events
// sent with an ack callback, so the ack kind is not required here; the
// edge must deliver those too.
func TestRecoveryScriptAgainstNodeServer(t *testing.T) {
	for _, tc := range recoveryTransports {
		t.Run(tc.name+"/recovered", func(t *testing.T) {
			server := testenv.StartNodeRecoveryServer(t, 10*time.Second)
			cut := testenv.StartNetCut(t, server.Addr)
			c := testenv.StartRecoveryClient(t, recoveryConfig("http://"+cut.Addr, tc.transports))
			c.CutWhileCounting(cut, 5*time.Second, "")
			res := c.Result(60 * time.Second)
			t.Logf("socket.recovered per connect %v, disconnects %v", res.Recovered(), res.Reasons())
			assert.Empty(t, res.RecoveredProblems(streamLength, false), "%+v", res)
			assert.Positive(t, res.Runs[0].WithOffset, "the Node server appends an offset to every stored event")
		})
		t.Run(tc.name+"/window passed", func(t *testing.T) {
			server := testenv.StartNodeRecoveryServer(t, 2*time.Second)
			cut := testenv.StartNetCut(t, server.Addr)
			c := testenv.StartRecoveryClient(t, recoveryConfig("http://"+cut.Addr, tc.transports))
			c.CutWhileCounting(cut, 4*time.Second, "")
			res := c.Result(60 * time.Second)
			t.Logf("socket.recovered per connect %v, disconnects %v", res.Recovered(), res.Reasons())
			assert.Empty(t, res.NewSessionProblems(streamLength), "%+v", res)
		})
	}
}

// recoverEdge starts workers w1 and w2 and n edges in front of them,
// each socketio_proxy with one sticky secret and `recover <window>`, and
// returns the workers and the edges' addresses.
func recoverEdges(t *testing.T, window string, n int) ([]*testenv.FlaskWorker, []string) {
	t.Helper()
	testenv.RequireNode(t)
	w1 := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1"})
	w2 := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w2", SecretKey: w1.SecretKey})
	var addrs []string
	for range n {
		addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	socketio_proxy {
		to %[2]s %[3]s
		sticky_secret recover-sticky-secret-0123456789
		recover %[4]s
	}
	reverse_proxy %[2]s %[3]s
}
`, addr, w1.Addr, w2.Addr, window)), addr)
		addrs = append(addrs, addr)
	}
	return []*testenv.FlaskWorker{w1, w2}, addrs
}

// workerLog is what every worker has logged so far.
func workerLog(workers []*testenv.FlaskWorker) string {
	var b strings.Builder
	for _, w := range workers {
		b.WriteString(w.Output())
	}
	return b.String()
}

// waitLog polls the workers' log until it has want lines of event for
// sid, and fails if it has more or never gets there.
func waitLog(t *testing.T, workers []*testenv.FlaskWorker, event, sid string, want int, within time.Duration) {
	t.Helper()
	var got int
	require.Eventually(t, func() bool {
		got = testenv.CountLog(workerLog(workers), event, sid)
		return got >= want
	}, within, 20*time.Millisecond, "the workers logged %q for sid %s %d times, want %d", event, sid, got, want)
	assert.Equal(t, want, got, "the workers logged %q for sid %s %d times, want %d", event, sid, got, want)
}

// Offline for 5s inside a 10s window while the worker streams 100 events:
// the client reconnects into the same session (socket.recovered, the same
// socket id), has every event once and in order, every ack reached the
// worker, and the worker never saw the client go: one connect and no
// disconnect for the sid.
func TestRecoveryOfflineInsideTheWindowKeepsTheSession(t *testing.T) {
	for _, tc := range recoveryTransports {
		t.Run(tc.name, func(t *testing.T) {
			workers, edges := recoverEdges(t, "10s", 1)
			cut := testenv.StartNetCut(t, edges[0])
			c := testenv.StartRecoveryClient(t, recoveryConfig("http://"+cut.Addr, tc.transports))
			c.CutWhileCounting(cut, 5*time.Second, "")
			res := c.Result(60 * time.Second)
			t.Logf("socket.recovered per connect %v, disconnects %v", res.Recovered(), res.Reasons())
			assert.Empty(t, res.RecoveredProblems(streamLength, true), "%+v", res)
			require.NotEmpty(t, res.Connects)
			sid := res.Connects[0].ID
			log := workerLog(workers)
			assert.Equal(t, 1, testenv.CountLog(log, "connect", sid), "connects of %s in the workers' log", sid)
			assert.Zero(t, testenv.CountLog(log, "disconnect", sid), "disconnects of %s in the workers' log", sid)
		})
	}
}

// Offline for 4s beyond a 2s window: the edge lets the worker's session
// go once the window has passed (the worker logs its disconnect, once),
// and the client's reconnection is a new session, not recovered, with a
// whole new stream on it.
func TestRecoveryOfflineBeyondTheWindowStartsANewSession(t *testing.T) {
	for _, tc := range recoveryTransports {
		t.Run(tc.name, func(t *testing.T) {
			workers, edges := recoverEdges(t, "2s", 1)
			cut := testenv.StartNetCut(t, edges[0])
			c := testenv.StartRecoveryClient(t, recoveryConfig("http://"+cut.Addr, tc.transports))
			c.CutWhileCounting(cut, 4*time.Second, "")
			res := c.Result(60 * time.Second)
			t.Logf("socket.recovered per connect %v, disconnects %v", res.Recovered(), res.Reasons())
			assert.Empty(t, res.NewSessionProblems(streamLength), "%+v", res)
			require.NotEmpty(t, res.Connects)
			// The window runs from when the edge notices the cut; a polling
			// client cut between two requests is noticed by a missed poll or
			// ping, which may take longer than the window itself.
			waitLog(t, workers, "disconnect", res.Connects[0].ID, 1, 30*time.Second)
		})
	}
}

// Two edges in front of the same workers, one sticky secret: a client cut
// off from the first reconnects through the second, which holds nothing of
// its session. The reconnection must be a clean new session (not
// recovered, no error), with every event of the new stream.
func TestRecoveryThroughAnotherEdgeIsANewSession(t *testing.T) {
	for _, tc := range recoveryTransports {
		t.Run(tc.name, func(t *testing.T) {
			_, edges := recoverEdges(t, "10s", 2)
			cut := testenv.StartNetCut(t, edges[0])
			c := testenv.StartRecoveryClient(t, recoveryConfig("http://"+cut.Addr, tc.transports))
			c.CutWhileCounting(cut, 5*time.Second, edges[1])
			res := c.Result(60 * time.Second)
			t.Logf("socket.recovered per connect %v, disconnects %v", res.Recovered(), res.Reasons())
			assert.Empty(t, res.NewSessionProblems(streamLength), "%+v", res)
		})
	}
}
