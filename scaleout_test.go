package flaskedge_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// The topology of docs/SCALING.md: two edges that share only their
// configuration (the sticky secret from the environment) in front of two
// Flask-SocketIO workers that share a Redis message queue. Clients spread
// over both edges and both workers all receive every room broadcast, so a
// client through edge 1 on one worker hears a client through edge 2 on
// the other.
func TestTwoEdgesTwoWorkersShareRoomsThroughRedis(t *testing.T) {
	testenv.RequireNode(t)
	redis := testenv.StartRedis(t)
	var workers []*testenv.FlaskWorker
	for _, name := range []string{"A", "B"} {
		workers = append(workers, testenv.StartFlaskWorker(t, testenv.FlaskOptions{
			Name: name, SecretKey: "scale-out-secret", RedisURL: "redis://" + redis,
		}))
	}
	var edges []string
	for range 2 {
		addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		testenv.StartEdgeFile(t, writeCaddyfile(t, fmt.Sprintf(`{
	admin {$EDGE_ADMIN}
}
http://%s {
	bind 127.0.0.1
	socketio_proxy {
		to %s %s
		sticky_secret {env.EDGE_STICKY_SECRET}
	}
}
`, addr, workers[0].Addr, workers[1].Addr)), map[string]string{"EDGE_STICKY_SECRET": "shared-by-both-edges-only"}, addr)
		edges = append(edges, "http://"+addr)
	}

	res := testenv.RunProbe(t, testenv.ProbeOptions{
		URLs:      edges, // session i through edges[i%2]
		Sessions:  8,
		Room:      "lobby",
		Echoes:    2,
		TimeoutMs: 30000,
	})
	require.Empty(t, res.Failures)
	require.NotNil(t, res.Broadcasts)
	assert.Equal(t, 8, res.Broadcasts.Sent)
	assert.Equal(t, res.Broadcasts.Expected, res.Broadcasts.Received, "every session heard every broadcast")
	assert.Equal(t, 64, res.Broadcasts.Expected)
	assert.Positive(t, res.Workers["A"], "worker A took sessions: %v", res.Workers)
	assert.Positive(t, res.Workers["B"], "worker B took sessions: %v", res.Workers)
}

func writeCaddyfile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "Caddyfile")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	return path
}
