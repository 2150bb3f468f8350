package socketioproxy_test

// Second round of attacks on issue 13 (after c627144): the wire
// enforcement of namespaces, the session's namespace bookkeeping, the
// owed DISCONNECTs, paths, and the registry. Same stack as
// attacks_integration_test.go. Each test names the attack it runs; it
// fails while the edge lets the attack through.

import (
	"path/filepath"
	"runtime"

	"github.com/gorilla/websocket"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// binaryPending is a BINARY_EVENT to /admin announcing one attachment:
// python-socketio then takes the session's next message, whatever it
// is, text included, as that attachment.
const binaryPending = `451-/admin,["stats",{"_placeholder":true,"num":0}]`

// The edge follows a client's DISCONNECT as soon as the worker took
// the body, but python-socketio does not read a text message as a packet
// while a BINARY_EVENT waits for its attachment: it takes "41/admin," as
// the attachment, and the session stays in /admin at the worker. The edge
// now believes the session left /admin, so when ada's role is withdrawn
// the proactive withdrawal has nothing to withdraw: no DISCONNECT to
// either side, the worker keeps her in /admin (its on-disconnect never
// runs, its /admin member count still holds her).
//
//	ada (admin in the database) joins /admin on polling
//	POST ...&sid=S  451-/admin,["stats",{"_placeholder":true,"num":0}]\x1e41/admin,
//	roles.json: ada -> user; wait whoami_ttl
//	GET ...&sid=S   -> no 41/admin,; the worker never logs "disconnect namespace=/admin"
func TestAttack2BinaryPendingDisconnectHidesAdminFromPollingWithdrawal(t *testing.T) {
	s, roles := startAtkWhoamiStack(t)
	ada := testenv.Login(t, s.worker.URL(), "ada", "user")
	p, status, body := atkOpen(t, s.url(), "/socket.io/", ada)
	require.Equal(t, 200, status, body)
	p.post("40/admin,")
	require.True(t, strings.HasPrefix(p.until("40/admin,", 3), "40/admin,{"), "ada is an admin in the database")

	status, body = p.post(binaryPending + "\x1e41/admin,")
	require.Equal(t, 200, status, body)
	time.Sleep(300 * time.Millisecond)
	require.Zero(t, atkCount(s.worker, "disconnect namespace=/admin"), "the worker took 41/admin, as an attachment")

	require.NoError(t, os.WriteFile(roles, []byte(`{"ada": "user"}`), 0o600))
	time.Sleep(1500 * time.Millisecond) // past whoami_ttl
	status, got := atkDo(t, "GET", s.url(), "/socket.io/?EIO=4&transport=polling&sid="+p.sid, "", p.header)
	require.Equal(t, 200, status, got)
	assert.Contains(t, got, "41/admin,", "the withdrawal did not take /admin from the session")
	assert.Eventually(t, func() bool { return atkCount(s.worker, "disconnect namespace=/admin") > 0 },
		3*time.Second, 50*time.Millisecond, "the worker still has ada in /admin after her role was withdrawn")
}

// The same on a WebSocket: the relay follows the client's
// "41/admin," before the worker reads it, and the worker reads it as an
// attachment. watchRoles then finds no /admin to withdraw, and the worker
// keeps ada in /admin for as long as the socket lives.
//
//	ws: 40/admin,   <- 40/admin,{...}
//	ws: 451-/admin,["stats",{"_placeholder":true,"num":0}]
//	ws: 41/admin,
//	roles.json: ada -> user; wait whoami_ttl + 5 s: no 41/admin, either way
func TestAttack2BinaryPendingDisconnectHidesAdminFromWebSocketWithdrawal(t *testing.T) {
	s, roles := startAtkWhoamiStack(t)
	ws := atkJoin(t, s, "ada", "/admin")

	ws.send(t, binaryPending)
	ws.send(t, "41/admin,")
	time.Sleep(300 * time.Millisecond)
	require.Zero(t, atkCount(s.worker, "disconnect namespace=/admin"), "the worker took 41/admin, as an attachment")

	require.NoError(t, os.WriteFile(roles, []byte(`{"ada": "user"}`), 0o600))
	assert.Equal(t, "41/admin,", ws.next("41/admin,", 8*time.Second), "the withdrawal did not reach the client")
	assert.Eventually(t, func() bool { return atkCount(s.worker, "disconnect namespace=/admin") > 0 },
		2*time.Second, 50*time.Millisecond, "the worker still has ada in /admin after her role was withdrawn")
}

// The worker's BINARY_EVENT for a namespace the session may no
// longer use is dropped (a DISCONNECT goes both ways instead), but its
// attachments, which follow as binary frames, are relayed: the relay's
// filter sees text messages only. And a client keeps the worker from
// ever acting on the edge's DISCONNECTs by leaving a BINARY_EVENT
// pending there (python-socketio takes every later message as its
// attachment, the edge's injected DISCONNECTs included). So a user whose
// role was withdrawn keeps receiving the binary payloads of "/" forever:
//
//	rule: namespace / role admin (whoami, ttl 1 s); ada and bob admins
//	ada ws: 40, 420["join","r"], then 4599-["echo",{"_placeholder":true,"num":0}]
//	roles.json: ada -> user; wait whoami_ttl + 5 s (ada gets 41)
//	bob ws: 451-["broadcast",{"room":"r","data":{"_placeholder":true,"num":0}}] + binary frame SECRET
//	ada receives the binary frame SECRET.
func TestAttack2WithdrawnNamespaceStillReceivesBinaryAttachments(t *testing.T) {
	roles := filepath.Join(t.TempDir(), "roles.json")
	require.NoError(t, os.WriteFile(roles, []byte(`{"ada": "admin", "bob": "admin"}`), 0o600))
	env := map[string]string{"ROLES_FILE": roles}
	whoami := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "whoami", SecretKey: atkSecret, Env: env})
	s := startAtkStack(t, env, "whoami "+whoami.URL()+"/api/whoami\n\t\twhoami_ttl 1s", "namespace / role admin")

	dial := func(user string) *atkWS {
		cookie := testenv.Login(t, s.worker.URL(), user, "user")
		ws, status, err := atkDial(t, s.addr, "/socket.io/?EIO=4&transport=websocket", http.Header{"Cookie": {cookie}})
		require.NoError(t, err, status)
		require.NotEmpty(t, ws.next("0{", 5*time.Second))
		ws.send(t, "40")
		require.True(t, strings.HasPrefix(ws.next("40", 5*time.Second), "40{"), user+" is an admin in the database")
		ws.send(t, `420["join","r"]`)
		require.NotEmpty(t, ws.next("430", 5*time.Second))
		return ws
	}
	ada, bob := dial("ada"), dial("bob")
	ada.send(t, `4599-["echo",{"_placeholder":true,"num":0}]`)

	require.NoError(t, os.WriteFile(roles, []byte(`{"ada": "user", "bob": "admin"}`), 0o600))
	// ada keeps a binary event waiting at the worker, which would take a
	// DISCONNECT as its attachment: the edge ends her session instead
	// (1008), or, had she none waiting, sends "41".
	if got := ada.next("41", 9*time.Second); got != "41" {
		select {
		case _, open := <-ada.msgs:
			require.False(t, open, "ada's session neither lost / nor ended")
		case <-time.After(time.Second):
			t.Fatal("ada's session neither lost / nor ended")
		}
	}

	require.NoError(t, bob.conn.WriteMessage(websocket.TextMessage,
		[]byte(`451-["broadcast",{"room":"r","data":{"_placeholder":true,"num":0}}]`)))
	require.NoError(t, bob.conn.WriteMessage(websocket.BinaryMessage, []byte("SECRET-AFTER-WITHDRAWAL")))
	require.NotEmpty(t, bob.next("451-", 5*time.Second), "bob gets the broadcast")
	assert.Empty(t, ada.next("SECRET-AFTER-WITHDRAWAL", 3*time.Second),
		"ada, whose role / needs was withdrawn, received the binary payload of a / broadcast")
}

// owe caps a session's owed DISCONNECTs at 32 only before
// appending: one POST whose body repeats a packet to a namespace the user
// may not use ("42/admin,1" x 90,000 in 1 MB) makes the edge log 90,000
// security events, forward 90,000 DISCONNECTs to the worker, and keep
// 90,000 owed DISCONNECTs for the session until its next GET (or the
// sweep, 50 s later), several times the bytes received. Sessions that
// never GET hold it.
//
//	POST ...&sid=S  ("42/admin,1\x1e" x 90000)  -> 200
//	GET  ...&sid=S  -> 90,000 x "41/admin,"
func TestAttack2OwedDisconnectsGrowWithoutBound(t *testing.T) {
	s := startAtkStack(t, nil, "", "namespace /admin role admin")
	uma := testenv.Login(t, s.worker.URL(), "uma", "user")
	const sessions, perBody = 20, 90000
	body := strings.TrimSuffix(strings.Repeat("42/admin,1\x1e", perBody), "\x1e")
	var polls []*atkPoller
	for range sessions {
		p, status, b := atkOpen(t, s.url(), "/socket.io/", uma)
		require.Equal(t, 200, status, b)
		polls = append(polls, p)
	}
	runtime.GC()
	before := heapInuse(t, s.edge)
	start := time.Now()
	for _, p := range polls {
		status, b := p.post(body)
		require.Equal(t, 200, status, b)
	}
	t.Logf("%d POSTs of %d bytes took %v", sessions, len(body), time.Since(start))
	time.Sleep(500 * time.Millisecond)
	grew := (heapInuse(t, s.edge) - before) / (1 << 20)
	t.Logf("heap held after %d MB received: %.1f MB", sessions*len(body)>>20, grew)
	status, got := atkDo(t, "GET", s.url(), "/socket.io/?EIO=4&transport=polling&sid="+polls[0].sid, "", polls[0].header)
	require.Equal(t, 200, status)
	n := strings.Count(got, "41/admin,")
	t.Logf("next GET carries %d DISCONNECTs", n)
	assert.LessOrEqual(t, n, 32, "the edge owed the client one DISCONNECT per packet, without bound")
}
