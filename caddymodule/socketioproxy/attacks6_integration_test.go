package socketioproxy_test

// Attacks on worker draining, dynamic workers, the message-rate close on
// both transports and the per-client limit keys. Each test names the
// attack it runs; a test fails while the edge lets the attack through.

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// Drain a worker (drain_timeout 2s) and undo the drain at once: the
// operator changed their mind, the worker takes new sessions again. Its
// live polling sessions must go on too. spreadCut gave each its moment
// (the only one: now), and undrain never takes it back, so letGo still
// refuses the session with "Session ID unknown" after the undrain.
func TestAttack6UndrainStillCutsThePollingSessions(t *testing.T) {
	s := startAtkStack(t, nil, "", "drain_timeout 2s")
	p, status, body := atkOpen(t, s.url(), "/socket.io/", "")
	require.Equal(t, 200, status, body)
	status, body = p.post("40")
	require.Equal(t, 200, status, body)
	require.NotEmpty(t, p.until("40", 3), "connected to /")

	status, body = adminDo(t, s.edge, http.MethodPost, "/socketio/upstreams/"+s.worker.Addr+"/drain")
	require.Equal(t, http.StatusOK, status, body)
	status, body = adminDo(t, s.edge, http.MethodDelete, "/socketio/upstreams/"+s.worker.Addr+"/drain")
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, `"draining":false`)

	status, body = p.post(`421["echo","after undrain"]`)
	require.Equal(t, 200, status, "the session of an undrained worker goes on: %s", body)
	assert.NotEmpty(t, p.until("431", 2), "the worker answers the session after the undrain")
}

// A polling session spends nearly all of its message rate, then upgrades
// to WebSocket: the relay starts a bucket of its own (messageLimit), so
// the session gets a whole new burst instead of the one token it had
// left.
func TestAttack6UpgradeMidLimitGetsAFreshMessageBucket(t *testing.T) {
	s := startAtkStack(t, nil, "", "rate_limit messages 5/m")
	p, status, body := atkOpen(t, s.url(), "/socket.io/", "")
	require.Equal(t, 200, status, body)
	status, body = p.post("40")
	require.Equal(t, 200, status, body)
	require.NotEmpty(t, p.until("40", 3))
	status, body = p.post(`42["echo",1]` + "\x1e" + `42["echo",2]` + "\x1e" + `42["echo",3]`)
	require.Equal(t, 200, status, "four of five messages spent: %s", body)

	ws, st, err := atkDial(t, s.addr, "/socket.io/?EIO=4&transport=websocket&sid="+p.sid, nil)
	require.NoError(t, err, st)
	ws.send(t, "2probe")
	require.Equal(t, "3probe", ws.next("3probe", 5*time.Second))
	ws.send(t, "5")
	acks := 0
	for i := range 4 {
		if ws.conn.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`42%d["echo",%d]`, 10+i, i))) != nil {
			break
		}
		if ws.next(fmt.Sprintf("43%d", 10+i), 3*time.Second) == "" {
			break
		}
		acks++
	}
	t.Logf("acks %d", acks)
	assert.LessOrEqual(t, acks, 1, "one message was left of the session's rate; the upgraded session got %d through", acks)
}

// Two sites on one edge: A takes its workers from a file, B names worker
// W itself. W leaves A's file (the operator moved it to B alone): A
// retires W, and retire cancels the cut of W's state, which belongs to
// the address, not to A. B's sessions on W are then refused as "unhealthy"
// (serving() looks at the cut) although B still names W and W is up.
func TestAttack6WorkerLeavingOneSitesFileCutsAnotherSitesSessions(t *testing.T) {
	testenv.RequirePython(t)
	w := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1", SecretKey: atkSecret})
	file := filepath.Join(t.TempDir(), "workers")
	require.NoError(t, os.WriteFile(file, []byte(w.Addr+"\n"), 0o644))
	a := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	b := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	socketio_proxy {
		dynamic file %[3]s {
			refresh 200ms
		}
		sticky_secret %[5]s
	}
}
http://%[2]s {
	bind 127.0.0.1
	socketio_proxy {
		to %[4]s
		sticky_secret %[5]s
	}
}
`, a, b, file, w.Addr, stickySecret)), a)

	// A session on A, so A's set holds W.
	pa, status, body := atkOpen(t, "http://"+a, "/socket.io/", "")
	require.Equal(t, 200, status, body)
	_ = pa
	pb, status, body := atkOpen(t, "http://"+b, "/socket.io/", "")
	require.Equal(t, 200, status, body)
	status, body = pb.post("40")
	require.Equal(t, 200, status, body)
	require.NotEmpty(t, pb.until("40", 3))

	require.NoError(t, os.WriteFile(file, []byte("127.0.0.1:1\n"), 0o644))
	time.Sleep(2500 * time.Millisecond)

	status, body = pb.post(`421["echo","B still names W"]`)
	require.Equal(t, 200, status, "site B's session on W goes on: %s", body)
	assert.NotEmpty(t, pb.until("431", 2), "W answers site B's session")
	_, status, body = atkOpen(t, "http://"+b, "/socket.io/", "")
	assert.Equal(t, 200, status, "site B opens new sessions on W: %s", body)
}

// The polling message rate counts only '4' records, but a "b" record is
// an Engine.IO message too, one python-socketio reads (as an attachment,
// or, when none is awaited, as a Socket.IO packet of its own): a client
// sends as many as it likes past rate_limit messages.
func TestAttack6BinaryRecordsDodgeThePollingMessageRate(t *testing.T) {
	s := startAtkStack(t, nil, "", "rate_limit messages 5/m")
	p, status, body := atkOpen(t, s.url(), "/socket.io/", "")
	require.Equal(t, 200, status, body)
	status, body = p.post("40")
	require.Equal(t, 200, status, body)
	require.NotEmpty(t, p.until("40", 3))
	var recs []string
	for i := range 10 {
		recs = append(recs, "b"+base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf(`2%d["echo",%d]`, 10+i, i))))
	}
	status, body = p.post(strings.Join(recs, "\x1e"))
	assert.Equal(t, http.StatusTooManyRequests, status, "ten messages past a limit of five went through: %s", body)
}

// A deploy tool writes garbage, a placeholder and the same worker twice
// into the file: the set the edge keeps is the worker it had, and its
// live session goes on (a line that is no host:port fails the whole
// reading; a placeholder from the request would let a client choose or
// change the set). "127.0.0.1:1/../x" passed as host:port (the port is
// "1/../x"): the edge made it the set, cut the live session, and would
// have sent every request to http://127.0.0.1:1/../x<path>.
func TestAttack6GarbageInTheWorkerFileKeepsTheSessions(t *testing.T) {
	testenv.RequirePython(t)
	w := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1", SecretKey: atkSecret})
	file := filepath.Join(t.TempDir(), "workers")
	require.NoError(t, os.WriteFile(file, []byte(w.Addr+"\n"+w.Addr+"\n"), 0o644))
	a := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	socketio_proxy {
		dynamic file %[2]s {
			refresh 200ms
		}
		sticky_secret %[3]s
	}
}
`, a, file, stickySecret)), a)
	p, status, body := atkOpen(t, "http://"+a, "/socket.io/", "")
	require.Equal(t, 200, status, body)
	status, body = p.post("40")
	require.Equal(t, 200, status, body)
	require.NotEmpty(t, p.until("40", 3))

	for i, content := range []string{
		"not an address\n" + w.Addr + "\n",
		"{http.request.header.X-Worker}\n",
		"127.0.0.1:1/../x\n",
	} {
		require.NoError(t, os.WriteFile(file, []byte(content), 0o644))
		time.Sleep(700 * time.Millisecond)
		status, body = p.post(fmt.Sprintf(`42%d["echo",%d]`, 20+i, i))
		require.Equal(t, 200, status, "file %q: %s", content, body)
		assert.NotEmpty(t, p.until(fmt.Sprintf("43%d", 20+i), 2), "file %q: the worker still answers", content)
	}
	// A placeholder a client fills in: the request's header must not
	// pick the worker.
	require.NoError(t, os.WriteFile(file, []byte("{http.request.header.X-Worker}:"+strings.Split(w.Addr, ":")[1]+"\n"), 0o644))
	time.Sleep(700 * time.Millisecond)
	status, body = atkDo(t, "GET", "http://"+a, "/socket.io/?EIO=4&transport=polling", "", map[string]string{"X-Worker": "127.0.0.1"})
	assert.Equal(t, 200, status, "handshake: %s", body)
	status, body = p.post(`4299["echo",99]`)
	require.Equal(t, 200, status, "the live session after the placeholder file: %s", body)
	assert.NotEmpty(t, p.until("4399", 2))
}
