package socketioproxy_test

// Third round of attacks on issue 13 (after a486177): the edge's
// bookkeeping of the binary attachments python-socketio awaits. Same
// stack and helpers as attacks_integration_test.go. Each test names the
// attack it runs; it fails while the edge lets the attack through.

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// atk3AnonConnects counts the worker's connections of an anonymous user
// to "/" (the log line of on_connect, not of on_disconnect).
func atk3AnonConnects(w *testenv.FlaskWorker) int {
	return atkCount(w, " w1 connect namespace=/ sid=", "user=-")
}

// The edge stores the attachments a polling session owes before the
// worker reads the body, and python-engineio drops a body it cannot
// decode whole (an invalid record, more than 16 records, bad base64,
// invalid UTF-8) yet answers 200 and keeps the session. So a body whose
// BINARY_EVENT announces attachments, followed by one record python
// cannot decode, leaves the edge awaiting attachments python never
// awaits; the edge then passes the session's next records untouched as
// "attachments" (up to 9,999,999,999 of them), and python reads them as
// packets: a CONNECT the namespace rules refuse reaches the worker, and
// so does every event after it. The edge only notices when a long-poll
// GET brings the worker's CONNECT reply; a client that never GETs keeps
// going. Here an anonymous client, past "namespace / authenticated",
// broadcasts into a room of a logged-in user.
//
//	rule: namespace / authenticated
//	uma (logged in) on WebSocket: 40, 420["join","r"]
//	anonymous: GET  /socket.io/?EIO=4&transport=polling   -> sid S
//	POST ...&sid=S  4599-/pub,["e",{"_placeholder":true,"num":0}]\x1ex   -> 200 (python: ValueError, body dropped)
//	POST ...&sid=S  40\x1e42["broadcast",{"room":"r","data":"from anonymous"}]   -> 200
//	worker: "connect namespace=/ sid=... user=-"; uma receives "from anonymous"
func TestAttack3BodyPythonDropsLeavesTheEdgeAwaitingAttachments(t *testing.T) {
	s := startAtkStack(t, nil, "", "namespace / authenticated")
	ws := atkJoin(t, s, "uma", "/")
	ws.send(t, `420["join","r"]`)
	require.NotEmpty(t, ws.next("430", 5*time.Second))

	p, status, body := atkOpen(t, s.url(), "/socket.io/", "")
	require.Equal(t, 200, status, body)
	// The rule holds without the trick.
	status, body = p.post("40")
	require.Equal(t, 200, status, body)
	require.True(t, strings.HasPrefix(p.until("44", 3), "44{"), "the edge refuses an anonymous CONNECT to /")
	require.Zero(t, atk3AnonConnects(s.worker))

	// The edge refuses the malformed record outright (400), or python
	// drops the body: either way the rule must hold after it.
	status, body = p.post(`4599-/pub,["e",{"_placeholder":true,"num":0}]` + "\x1ex")
	require.Contains(t, []int{200, 400}, status, body)
	status, body = p.post("40\x1e" + `42["broadcast",{"room":"r","data":"from anonymous"}]`)
	require.Equal(t, 200, status, body)
	assert.Empty(t, ws.next(`42["broadcast",{"room":"r","data":"from anonymous"`, 2*time.Second),
		"an anonymous client broadcast to a logged-in user's room past namespace / authenticated")
	assert.Zero(t, atk3AnonConnects(s.worker), "an anonymous CONNECT to / reached the worker past the rule")
}

// The same with a body python refuses for its record count only (17
// records, python-engineio's max_decode_packets is 16): nothing malformed
// in any record.
//
//	POST ...&sid=S  459-/pub,["e",{"_placeholder":true,"num":0}] + 16 x "\x1e6"  -> 200 (python: Too many packets)
//	POST ...&sid=S  40  -> the worker connects the anonymous client to /
func TestAttack3SeventeenRecordsLeaveTheEdgeAwaitingAttachments(t *testing.T) {
	s := startAtkStack(t, nil, "", "namespace / authenticated")
	p, status, body := atkOpen(t, s.url(), "/socket.io/", "")
	require.Equal(t, 200, status, body)
	status, body = p.post(`4599-/pub,["e",{"_placeholder":true,"num":0}]` + strings.Repeat("\x1e6", 16))
	require.Equal(t, 200, status, body)
	status, body = p.post("40")
	require.Equal(t, 200, status, body)
	time.Sleep(500 * time.Millisecond)
	assert.Zero(t, atk3AnonConnects(s.worker), "an anonymous CONNECT to / reached the worker past the rule")
}

// Each edge keeps its own count of the attachments a polling session
// owes, but python-socketio counts the session's messages whichever edge
// relays them. With two edges sharing sticky_secret (as the README
// supports), a client announces an attachment through edge A, delivers
// it through edge B, and edge A, still awaiting it, passes the next
// record untouched: python reads it as a CONNECT. Nothing malformed.
//
//	rule: namespace / authenticated; no cookie; edges A and B
//	A: GET  /socket.io/?EIO=4&transport=polling   -> sid S
//	A: POST ...&sid=S  451-/pub,["e",{"_placeholder":true,"num":0}]
//	B: POST ...&sid=S  bAQID                      (python: the attachment)
//	A: POST ...&sid=S  40                         (A: "the attachment"; python: CONNECT /)
func TestAttack3AttachmentDeliveredThroughAnotherEdge(t *testing.T) {
	testenv.RequirePython(t)
	w := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1", SecretKey: atkSecret})
	var edges []string
	for range 2 {
		addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	flask_session {
		secret_key %[3]s
	}
	socketio_proxy {
		to %[2]s
		sticky_secret attack3-sticky-secret
		namespace / authenticated
	}
}
`, addr, w.Addr, atkSecret)), addr)
		edges = append(edges, "http://"+addr)
	}
	viaA, status, body := atkOpen(t, edges[0], "/socket.io/", "")
	require.Equal(t, 200, status, body)
	viaB := &atkPoller{t: t, base: edges[1], path: "/socket.io/", sid: viaA.sid, header: viaA.header}

	status, body = viaA.post(`451-/pub,["e",{"_placeholder":true,"num":0}]`)
	require.Equal(t, 200, status, body)
	status, body = viaB.post("bAQID")
	require.Equal(t, 200, status, body)
	status, body = viaA.post("40")
	require.Equal(t, 200, status, body)
	time.Sleep(500 * time.Millisecond)
	assert.Zero(t, atk3AnonConnects(w), "an anonymous CONNECT to / reached the worker past the rule")
}

// The edge counts every client message as an awaited attachment, Engine.IO
// control packets included (a pong "3", a noop "6"), but python-engineio
// never hands those to python-socketio. So after a BINARY_EVENT and a
// pong the edge believes python awaits nothing while python still awaits
// the attachment, and the DISCONNECT the edge sends the worker when a
// role is withdrawn is swallowed as that attachment: the worker keeps the
// user in /admin (its on-disconnect never runs, its /admin count holds
// her). The same with a BINARY_EVENT announcing no attachment
// ("45/admin,[...]"): python then takes every later message as an
// unexpected attachment and drops it, the edge's DISCONNECTs included.
//
//	ada (admin in the database) on WebSocket: 40/admin,  <- 40/admin,{...}
//	ws: 451-["echo",{"_placeholder":true,"num":0}]
//	ws: 3
//	roles.json: ada -> user; within whoami_ttl + 5 s the edge sends 41/admin, both ways
//	worker: never "disconnect namespace=/admin"
func TestAttack3PongCountedAsAttachmentHidesAdminFromWithdrawal(t *testing.T) {
	for _, c := range []struct{ name, binary, then string }{
		{"pong after a binary event", `451-["echo",{"_placeholder":true,"num":0}]`, "3"},
		{"binary event without attachments", `45["echo"]`, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, roles := startAtkWhoamiStack(t)
			ws := atkJoin(t, s, "ada", "/admin")

			ws.send(t, c.binary)
			if c.then != "" {
				ws.send(t, c.then)
			}
			time.Sleep(300 * time.Millisecond)
			require.NoError(t, os.WriteFile(roles, []byte(`{"ada": "user"}`), 0o600))
			got := ws.next("41/admin,", 8*time.Second)
			if got == "" {
				return // the edge ended the session instead: held
			}
			assert.Eventually(t, func() bool { return atkCount(s.worker, "disconnect namespace=/admin") > 0 },
				2*time.Second, 50*time.Millisecond, "the worker still has ada in /admin after her role was withdrawn")
		})
	}
}
