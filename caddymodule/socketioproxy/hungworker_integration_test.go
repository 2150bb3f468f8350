package socketioproxy_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// hungWorker accepts connections and reads them, and never answers: a
// worker whose event loop is blocked (a CPU-bound handler under
// eventlet, a deadlock), which the kernel still accepts for.
type hungWorker struct {
	ln       net.Listener
	accepted atomic.Int32
}

func startHungWorker(t *testing.T) *hungWorker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	hw := &hungWorker{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			hw.accepted.Add(1)
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return hw
}

// startHungStack starts an edge with dial_timeout 1s in front of the
// given workers, round robin, a worker out of rotation for a minute.
func startHungStack(t *testing.T, workers ...string) (addr string, edge *testenv.Edge) {
	t.Helper()
	addr = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	path := filepath.Join(t.TempDir(), "Caddyfile")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`{
	admin {$EDGE_ADMIN}
	persist_config off
}
http://%s {
	bind 127.0.0.1
	socketio_proxy {
		to %s
		lb_policy round_robin
		dial_timeout 1s
		fail_duration 1m
	}
}
`, addr, strings.Join(workers, " "))), 0o600))
	return addr, testenv.StartEdgeFile(t, path, nil, addr)
}

// A polling handshake sent to a worker that accepts and never answers
// gets its answer from another worker within dial_timeout, as a
// WebSocket handshake does; the hung worker is out of rotation after
// that one try, and the edge says why. Before, the handshake waited for
// as long as its client (socket.io-client: 20 s, then a new try, which
// round robin could send to the same worker).
func TestAPollingHandshakeToAHungWorkerGoesToAnother(t *testing.T) {
	hung := startHungWorker(t)
	good := startFakeWorker(t)
	addr, edge := startHungStack(t, hung.ln.Addr().String(), good.addr())
	client := &http.Client{Timeout: 15 * time.Second}
	for i := range 4 {
		start := time.Now()
		res, err := client.Get("http://" + addr + "/socket.io/?EIO=4&transport=polling")
		require.NoError(t, err, "handshake %d", i)
		body := make([]byte, 512)
		n, _ := res.Body.Read(body)
		res.Body.Close()
		took := time.Since(start)
		assert.Equal(t, http.StatusOK, res.StatusCode, "handshake %d: %s", i, body[:n])
		assert.Contains(t, string(body[:n]), `"sid":"abcdefghij0123456789`, "handshake %d: the good worker's open packet", i)
		assert.Less(t, took, 1500*time.Millisecond+time.Second, "handshake %d took %v (dial_timeout 1s)", i, took)
	}
	assert.Equal(t, int32(1), hung.accepted.Load(), "connections to the hung worker: one try, then out of rotation")
	// The log line is written before the answer, but reaches the
	// test through a pipe: it may come after it.
	assert.Eventually(t, func() bool { return strings.Contains(edge.Output(), "no answer to the handshake within dial_timeout") },
		5*time.Second, 10*time.Millisecond, "the edge's log says why")
}

// The hung worker alone: the handshake gets the edge's 502, which
// socket.io-client reports as a connection error and retries, within
// dial_timeout.
func TestAPollingHandshakeToTheOnlyWorkerHungIsAnsweredByTheEdge(t *testing.T) {
	hung := startHungWorker(t)
	addr, edge := startHungStack(t, hung.ln.Addr().String())
	start := time.Now()
	res, err := (&http.Client{Timeout: 15 * time.Second}).Get("http://" + addr + "/socket.io/?EIO=4&transport=polling")
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusBadGateway, res.StatusCode)
	assert.Less(t, time.Since(start), 1500*time.Millisecond+time.Second, "dial_timeout 1s")
	// The log line is written before the answer, but reaches the
	// test through a pipe: it may come after it.
	assert.Eventually(t, func() bool { return strings.Contains(edge.Output(), "no answer to the handshake within dial_timeout") },
		5*time.Second, 10*time.Millisecond, "the edge's log says why")
}
