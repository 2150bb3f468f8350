package socketioproxy_test

// Second round of attacks on issue 13 (after c627144): the wire
// enforcement of namespaces, the session's namespace bookkeeping, the
// owed DISCONNECTs, paths, and the registry. Same stack as
// attacks_integration_test.go. Each test names the attack it runs; it
// fails while the edge lets the attack through.

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// STOPPED. Path spellings that eventlet and the edge might read
// differently: each either never reaches the worker's Engine.IO endpoint
// (the worker does not reduce dot segments, backslashes or encoded
// slashes) or is an Engine.IO request the edge checks (sealed sid, the
// namespace rule holds). Measured on the worker directly: /%73ocket.io/,
// /socket.io%2f, /socket.io/;x, /socket.io/../socket.io/ and
// /socket.io/x/ are Engine.IO to it; the rest are 404.
func TestAttack2PathSpellingsNeverOpenAnUncheckedSession(t *testing.T) {
	s := startAtkStack(t, nil, "", "namespace / authenticated")
	for _, path := range []string{
		"/./socket.io/", "/x/../socket.io/", "/%2e/socket.io/", "/%2e%2e/socket.io/", "/.//socket.io/",
		"/%2fsocket.io/", "//%2fsocket.io/", "/%2F%2Fsocket.io/", "/%5csocket.io/", "/\\socket.io/",
		"/%73ocket.io/", "/socket.io%2f", "/socket.io%2F", "/socket.io/;x/", "/socket.io/../socket.io/",
		"/socket.io/x/", "/socket.io/%00/", "//socket.io/", "///socket.io/", "//./socket.io/",
	} {
		p, status, body := atkOpen(t, s.url(), path, "")
		if p.sid == "" {
			continue
		}
		require.NotEqual(t, 20, len(p.sid), "%s: an unsealed worker sid: %d %s", path, status, body)
		status, body = p.post("40")
		require.Equal(t, 200, status, "%s: %s", path, body)
		assert.True(t, strings.HasPrefix(p.until("4", 3), "44"), "%s: anonymous joined / past `namespace / authenticated`", path)
	}
}

// STOPPED. Upgrades that never finish: a probe then a close before "5",
// a second upgrade of the same sid while the first is open, an upgrade of
// a sid the worker forgot. Once the clients are gone the per-worker live
// counts (admin API /socketio/upstreams) return to zero.
func TestAttack2UnfinishedUpgradesLeaveNoLiveSessions(t *testing.T) {
	s := startAtkStack(t, map[string]string{"PING_INTERVAL": "1", "PING_TIMEOUT": "1"}, "", "")
	for range 3 {
		p, status, body := atkOpen(t, s.url(), "/socket.io/", "")
		require.Equal(t, 200, status, body)
		target := "/socket.io/?EIO=4&transport=websocket&sid=" + p.sid
		a, status, err := atkDial(t, s.addr, target, nil)
		require.NoError(t, err, status)
		a.send(t, "2probe")
		require.Equal(t, "3probe", a.next("3probe", 5*time.Second))
		b, _, err := atkDial(t, s.addr, target, nil)
		if err == nil {
			b.send(t, "2probe")
			b.conn.Close()
		}
		a.conn.Close()
		// The session goes on in polling, then its client goes silent.
		status, _ = p.post("40")
		assert.Contains(t, []int{200, 400}, status)
		p.post("1")
		if _, _, err := atkDial(t, s.addr, target, nil); err == nil {
			t.Log("upgrade of a closed session accepted")
		}
	}
	waitRegistryEmpty(t, s.edge)
}
