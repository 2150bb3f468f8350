package socketioproxy_test

// Fourth round of attacks on issue 13 (after c569504). Same stack and
// helpers as attacks_integration_test.go. Each test fails while the edge
// lets the attack through.

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The edge reads every text message as a packet, attachments included,
// and a BINARY_EVENT read there sets its count anew (pending = n), while
// python-socketio takes that message as one attachment of the packet it
// awaits. So a BINARY_EVENT announcing 5 attachments, then a text
// "451-[...]" (python: attachment 1 of 5; the edge: 1 pending), then an
// event (python: attachment 2 of 5; the edge: 0 pending) leaves python
// awaiting 3 while the edge believes it awaits none: the DISCONNECT the
// edge sends on withdrawal is swallowed as an attachment.
//
//	ada (admin in the database) on WebSocket: 40/admin,  <- 40/admin,{...}
//	ws: 455-["echo",{"_placeholder":true,"num":0}]
//	ws: 451-["echo",{"_placeholder":true,"num":0}]
//	ws: 42["echo","x"]
//	roles.json: ada -> user; the edge sends 41/admin both ways
//	worker: never "disconnect namespace=/admin"
func TestAttack4TextAttachmentResetsTheEdgesCount(t *testing.T) {
	s, roles := startAtkWhoamiStack(t)
	ws := atkJoin(t, s, "ada", "/admin")

	ws.send(t, `455-["echo",{"_placeholder":true,"num":0}]`)
	ws.send(t, `451-["echo",{"_placeholder":true,"num":0}]`)
	ws.send(t, `42["echo","x"]`)
	time.Sleep(300 * time.Millisecond)
	require.NoError(t, os.WriteFile(roles, []byte(`{"ada": "user"}`), 0o600))
	got := ws.next("41/admin,", 8*time.Second)
	if got == "" {
		return // the edge ended the session instead: held
	}
	assert.Eventually(t, func() bool { return atkCount(s.worker, "disconnect namespace=/admin") > 0 },
		2*time.Second, 50*time.Millisecond, "the worker still has ada in /admin after her role was withdrawn")
}
