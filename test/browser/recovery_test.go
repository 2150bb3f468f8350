package browser

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// Connection state recovery in Chromium: the page (recover.html, served
// from its own origin with the official client) runs
// test/client/recover-run.mjs against the server through a
// testenv.NetCut; the test takes the browser offline through DevTools'
// network emulation and cuts the NetCut at the same moment, since the
// emulation may leave a live WebSocket open.

var browserTransports = []struct {
	name       string
	transports []string
}{
	{"polling", []string{"polling"}},
	{"websocket", []string{"websocket"}},
}

const (
	streamLength   = 100
	streamInterval = 30 // ms
)

func recoveryConfig(url string, transports []string) testenv.RecoveryConfig {
	return testenv.RecoveryConfig{URL: url, Transports: transports, N: streamLength, IntervalMs: streamInterval, TimeoutMs: 60_000}
}

// The page and driver, held against the Node socket.io server's
// connectionStateRecovery: offline for 5s in a 10s window, the session is
// recovered with every stored event once and in order (the Node server
// stores no event sent with an ack callback, so those are not required).
func TestBrowserRecoveryAgainstNodeServer(t *testing.T) {
	testenv.RequireBrowser(t)
	page := fmt.Sprintf("http://127.0.0.1:%d/", testenv.ServePage(t, "test/browser/recover.html"))
	for _, tc := range browserTransports {
		t.Run(tc.name, func(t *testing.T) {
			server := testenv.StartNodeRecoveryServer(t, 10*time.Second)
			cut := testenv.StartNetCut(t, server.Addr)
			c := testenv.StartRecoveryBrowser(t, page, recoveryConfig("http://"+cut.Addr, tc.transports))
			c.CutWhileCounting(cut, 5*time.Second, "")
			res := c.Result(60 * time.Second)
			t.Logf("socket.recovered per connect %v, disconnects %v", res.Recovered(), res.Reasons())
			assert.Empty(t, res.RecoveredProblems(streamLength, false), "%+v", res)
		})
	}
}

// Offline for 5s inside the edge's 10s window, in Chromium: the session
// is recovered (socket.recovered, the same socket id), every event once
// and in order, every ack at the worker, and the worker saw one connect
// and no disconnect.
func TestBrowserRecoveryOfflineInsideTheWindowKeepsTheSession(t *testing.T) {
	testenv.RequireBrowser(t)
	pagePort := testenv.ServePage(t, "test/browser/recover.html")
	page := fmt.Sprintf("http://127.0.0.1:%d/", pagePort)
	w1 := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1"})
	w2 := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w2", SecretKey: w1.SecretKey})
	edgeAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	edge_cors http://127.0.0.1:%[4]d {
		environment development
	}
	socketio_proxy {
		to %[2]s %[3]s
		sticky_secret recover-sticky-secret-0123456789
		recover 10s
	}
	reverse_proxy %[2]s %[3]s
}
`, edgeAddr, w1.Addr, w2.Addr, pagePort)), edgeAddr)

	for _, tc := range browserTransports {
		t.Run(tc.name, func(t *testing.T) {
			cut := testenv.StartNetCut(t, edgeAddr)
			c := testenv.StartRecoveryBrowser(t, page, recoveryConfig("http://"+cut.Addr, tc.transports))
			c.CutWhileCounting(cut, 5*time.Second, "")
			res := c.Result(60 * time.Second)
			t.Logf("socket.recovered per connect %v, disconnects %v", res.Recovered(), res.Reasons())
			assert.Empty(t, res.RecoveredProblems(streamLength, true), "%+v", res)
			require.NotEmpty(t, res.Connects)
			sid := res.Connects[0].ID
			log := w1.Output() + w2.Output()
			assert.Equal(t, 1, testenv.CountLog(log, "connect", sid), "connects of %s in the workers' log", sid)
			assert.Zero(t, testenv.CountLog(log, "disconnect", sid), "disconnects of %s in the workers' log", sid)
		})
	}
}
