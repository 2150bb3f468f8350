package socketioproxy_test

// Attacks on connection state recovery (recover <window>) against the
// real stack: a test here fails while its hole is open.

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// echoWithin sends an echo on "/" and reports whether its ack came back
// within d (answering pings on the way).
func (c *wsClient) echoWithin(id string, d time.Duration) bool {
	if c.conn.WriteMessage(websocket.TextMessage, []byte("42"+id+`["echo","x"]`)) != nil {
		return false
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	for {
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			return false
		}
		if string(msg) == "2" {
			_ = c.conn.WriteMessage(websocket.TextMessage, []byte("3"))
			continue
		}
		if strings.HasPrefix(string(msg), "43"+id) {
			return true
		}
	}
}

// Two sessions of one (anonymous) client, each presenting the other's
// pid in a CONNECT, over and over: recoverConnect calls held.adopt(b),
// which locks held.mu then b.mu; the other session's reader locks them
// in the opposite order. The two bridges deadlock: neither answers any
// more, their worker sessions are never ended (no window, no close), and
// anyone can leak worker connections this way, forever. It is a race:
// the test fails in about one run of five here (more often under load),
// and then logs the goroutines stuck in adopt (bridge.go, nb.mu.Lock).
func TestAdversarialRecoverCrossedPidsDeadlockTwoBridges(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 5s", false)
	const n = 16
	var cs []*wsClient
	var pids []string
	for range n {
		c := dialWS(t, s, "")
		_, pid := connectReply(t, c.connect(t, "/"))
		cs, pids = append(cs, c), append(pids, pid)
	}
	// Drain what the edge sends, so that writes never block.
	for _, c := range cs {
		go func(c *wsClient) {
			for {
				if _, _, err := c.conn.ReadMessage(); err != nil {
					return
				}
			}
		}(c)
	}
	// Each session presents the others' pids, so that pairs cross.
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 2000 {
				j := (i + 1 + k%(n-1)) % n
				msg := []byte(`40{"pid":"` + pids[j] + `","offset":""}`)
				_ = c.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
				if c.conn.WriteMessage(websocket.TextMessage, msg) != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	time.Sleep(time.Second)
	for _, c := range cs {
		c.conn.Close()
	}

	// Whatever was refused, both sessions must end at the worker once
	// the clients are gone and the window passes.
	var workerSIDs []string
	for l := range strings.SplitSeq(s.worker.Output(), "\n") {
		if i := strings.Index(l, "connect namespace=/ sid="); i >= 0 && !strings.Contains(l, "disconnect") {
			workerSIDs = append(workerSIDs, strings.Fields(l[i+len("connect namespace=/ sid="):])[0])
		}
	}
	require.NotEmpty(t, workerSIDs)
	ended := assert.Eventually(t, func() bool {
		for _, sid := range workerSIDs {
			if workerDisconnects(s.worker, sid) != 1 {
				return false
			}
		}
		return true
	}, 15*time.Second, 50*time.Millisecond, "a worker session never ended: its bridge is deadlocked (adopt locks held.mu then nb.mu, in both orders)")
	if !ended {
		// Show where: the edge's goroutines stuck in adopt.
		res, err := http.Get("http://" + s.edge.AdminAddr + "/debug/pprof/goroutine?debug=2")
		require.NoError(t, err)
		dump, _ := io.ReadAll(res.Body)
		res.Body.Close()
		for g := range strings.SplitSeq(string(dump), "\n\n") {
			if strings.Contains(g, "(*bridge).adopt") {
				t.Logf("stuck:\n%s", g)
			}
		}
	}
}

// pollOpen opens a polling session as the holder of cookie and returns
// its sid.
func pollOpen(t *testing.T, s *advStack, cookie string) string {
	t.Helper()
	status, body := s.request(t, "GET", "/socket.io/?EIO=4&transport=polling", "", map[string]string{"Cookie": cookie})
	require.Equal(t, 200, status, body)
	m := sidPattern.FindStringSubmatch(body)
	require.NotNil(t, m, body)
	return m[1]
}

func pollPost(t *testing.T, s *advStack, cookie, sid, body string) (int, string) {
	t.Helper()
	return s.request(t, "POST", "/socket.io/?EIO=4&transport=polling&sid="+sid, body, map[string]string{"Cookie": cookie})
}

func pollGet(t *testing.T, s *advStack, cookie, sid string) (int, string) {
	t.Helper()
	return s.request(t, "GET", "/socket.io/?EIO=4&transport=polling&sid="+sid, "", map[string]string{"Cookie": cookie})
}

// dialUpgrade opens the WebSocket of an upgrade of polling session sid.
func dialUpgrade(t *testing.T, s *advStack, cookie, sid string) *websocket.Conn {
	t.Helper()
	h := http.Header{}
	if cookie != "" {
		h.Set("Cookie", cookie)
	}
	conn, res, err := websocket.DefaultDialer.Dial("ws://"+s.addr+"/socket.io/?EIO=4&transport=websocket&sid="+sid, h)
	if res != nil {
		res.Body.Close()
	}
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// An upgrade that fails after its probe ("2probe" answered, then the
// WebSocket closes without "5") leaves the bridge's probing flag set for
// good: from then on every poll of the session returns a noop at once
// instead of waiting, and the client spins GETs against the edge (an
// Engine.IO server goes back to plain polling). bridge_http.go
// upgradeClient: fail() never clears cur.probing.
func TestAdversarialRecoverAFailedUpgradeProbeLeavesPollsSpinning(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 10s", false)
	sid := s.openPolling(t, "")
	up := dialUpgrade(t, s, "", sid)
	require.NoError(t, up.WriteMessage(websocket.TextMessage, []byte("2probe")))
	_ = up.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, msg, err := up.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, "3probe", string(msg))
	up.Close()
	time.Sleep(200 * time.Millisecond)

	// A poll waits again for the session's packets: it does not come
	// back at once with a noop.
	client := &http.Client{Timeout: time.Second}
	res, err := client.Get(s.url() + "/socket.io/?EIO=4&transport=polling&sid=" + sid)
	if err == nil {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		assert.NotEqual(t, "6", string(b), "a poll of a session whose upgrade failed came back at once with a noop")
	}
}

// The old Engine.IO session of a recovered one keeps a door open: a
// WebSocket upgrade of the old sid probed before the recovery sends "5"
// after it, and upgradeClient looks the sid up in the bridge table (which
// routes it to the recovered bridge) without asking whether it is still
// the client's current session: the old sid's WebSocket becomes the
// recovered session's transport. It reads and sends on the session, and
// the client that recovered it only gets noops.
func TestAdversarialRecoverTheOldSidUpgradesIntoTheRecoveredSession(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 20s", false)
	uma := testenv.Login(t, s.worker.URL(), "uma", "user")
	old := pollOpen(t, s, uma)
	status, body := pollPost(t, s, uma, old, "40")
	require.Equal(t, 200, status, body)
	status, body = pollGet(t, s, uma, old)
	require.Equal(t, 200, status, body)
	_, pid := connectReply(t, body)

	// The old session's upgrade, probed, not finished.
	up := dialUpgrade(t, s, uma, old)
	require.NoError(t, up.WriteMessage(websocket.TextMessage, []byte("2probe")))
	_ = up.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, msg, err := up.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, "3probe", string(msg))

	// The old session goes away; a new one recovers it.
	status, body = pollPost(t, s, uma, old, "1")
	require.Equal(t, 200, status, body)
	fresh := pollOpen(t, s, uma)
	status, body = pollPost(t, s, uma, fresh, `40{"pid":"`+pid+`","offset":""}`)
	require.Equal(t, 200, status, body)
	status, body = pollGet(t, s, uma, fresh)
	require.Equal(t, 200, status, body)
	_, got := connectReply(t, body)
	require.Equal(t, pid, got, "recovered")
	status, _ = pollGet(t, s, uma, old)
	require.Equal(t, 400, status, "the old sid is refused")

	// The old sid's upgrade now completes.
	require.NoError(t, up.WriteMessage(websocket.TextMessage, []byte("5")))
	require.NoError(t, up.WriteMessage(websocket.TextMessage, []byte(`427["echo","from the old sid"]`)))
	stolen := &wsClient{conn: up}
	_ = up.SetReadDeadline(time.Now().Add(3 * time.Second))
	var reply string
	for {
		_, m, err := up.ReadMessage()
		if err != nil {
			break
		}
		if strings.HasPrefix(string(m), "437") {
			reply = string(m)
			break
		}
	}
	_ = stolen
	assert.Empty(t, reply, "the old sid's WebSocket drives the recovered session")
	status, body = pollPost(t, s, uma, fresh, `428["echo","x"]`)
	assert.Equal(t, 200, status, body)
}

// An admin demoted (a new cookie of the same user says role user) gets
// "/" back by its pid, which is right; the recovered session then keeps
// the identity of the old admin cookie, so a pid of /admin presented on
// it (or a plain CONNECT to /admin) passes the namespace rule that the
// client's own cookie fails: recoverConnect checks b.pol().admit with
// b.live of the bridge serving the session, which after adopt is the
// held bridge's (the old cookie's).
func TestAdversarialRecoverADemotedAdminGetsAdminBackThroughSlash(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 20s", false)
	asAdmin := testenv.Login(t, s.worker.URL(), "ada", "admin")
	pid, adminPID, _ := heldWithAdmin(t, s, asAdmin)

	asUser := testenv.Login(t, s.worker.URL(), "ada", "user")
	// Straight at /admin: refused (the rule holds).
	direct := recoverWith(t, s, asUser, "/admin", adminPID, "")
	assert.True(t, strings.HasPrefix(direct, "44/admin,"), "a user recovered /admin directly: %s", direct)

	back := dialWS(t, s, asUser)
	back.send(t, `40{"pid":"`+pid+`","offset":""}`)
	_, got := connectReply(t, back.read(t, "40"))
	require.Equal(t, pid, got)
	back.send(t, `40/admin,{"pid":"`+adminPID+`","offset":""}`)
	r := back.read(t, "4")
	assert.False(t, strings.HasPrefix(r, "40/admin,{"), "a user's connection got /admin back: %s", r)
	// Nor does an event to /admin get an answer: the next thing after
	// it is the echo on "/" sent behind it.
	back.send(t, `42/admin,9["stats"]`)
	back.send(t, `4210["echo","after"]`)
	r = back.read(t, "43")
	assert.True(t, strings.HasPrefix(r, "4310"), "a user's connection got /admin data: %s", r)
}

// The same door from the other side: a held session's old sid can still
// be upgraded while it is held (upgradeClient checks only for a WebSocket
// or an end, not b.away), and when a new session then recovers it, adopt
// replaces b.ws with the new client's WebSocket without closing the old
// sid's one, whose reader still feeds the bridge: the old sid injects
// packets into the recovered session (here an echo whose ack reaches the
// client that recovered it).
func TestAdversarialRecoverAnOldSidWebSocketInjectsIntoTheRecoveredSession(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 20s", false)
	uma := testenv.Login(t, s.worker.URL(), "uma", "user")
	old := pollOpen(t, s, uma)
	status, body := pollPost(t, s, uma, old, "40")
	require.Equal(t, 200, status, body)
	status, body = pollGet(t, s, uma, old)
	require.Equal(t, 200, status, body)
	_, pid := connectReply(t, body)
	status, body = pollPost(t, s, uma, old, "1") // gone: held
	require.Equal(t, 200, status, body)

	// The held session's old sid cannot be upgraded: a client that
	// left comes back through a new session and its pid.
	_, res, err := websocket.DefaultDialer.Dial("ws://"+s.addr+"/socket.io/?EIO=4&transport=websocket&sid="+old, http.Header{"Cookie": {uma}})
	require.Error(t, err, "the old sid of a held session was upgraded")
	require.NotNil(t, res)
	assert.Equal(t, 400, res.StatusCode)

	back := dialWS(t, s, uma)
	back.send(t, `40{"pid":"`+pid+`","offset":""}`)
	_, got := connectReply(t, back.read(t, "40"))
	require.Equal(t, pid, got, "recovered")
	back.echo(t, 77)
}

// A live (recovered) session's pid replayed by a second client of the
// same user, and one pid raced by two clients at once: at most one
// client ever holds the session.
func TestAdversarialRecoverAPidRecoversOnceAndNeverFromTheLiveOwner(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 20s", false)
	uma := testenv.Login(t, s.worker.URL(), "uma", "user")
	ws := dialWS(t, s, uma)
	sid, pid := connectReply(t, ws.connect(t, "/"))
	ws.drop()

	replies := make(chan string, 2)
	var clients [2]*wsClient
	for i := range clients {
		clients[i] = dialWS(t, s, uma)
	}
	for _, c := range clients {
		go func() {
			_ = c.conn.WriteMessage(websocket.TextMessage, []byte(`40{"pid":"`+pid+`","offset":""}`))
		}()
	}
	for _, c := range clients {
		_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			_, m, err := c.conn.ReadMessage()
			require.NoError(t, err)
			if strings.HasPrefix(string(m), "4") && string(m) != "2" {
				replies <- string(m)
				break
			}
		}
	}
	won := 0
	for range 2 {
		r := <-replies
		if got, _ := connectReply(t, r); got == sid {
			won++
		}
	}
	assert.Equal(t, 1, won, "exactly one of two racing clients recovers")

	// Replayed against the live session: a new session.
	gotSID, _ := connectReply(t, recoverWith(t, s, uma, "/", pid, ""))
	assert.NotEqual(t, sid, gotSID, "a replayed pid took the live session")
	// Over polling, from another user: a new session.
	ada := testenv.Login(t, s.worker.URL(), "ada", "user")
	p := pollOpen(t, s, ada)
	status, body := pollPost(t, s, ada, p, `40{"pid":"`+pid+`","offset":""}`)
	require.Equal(t, 200, status, body)
	_, body = pollGet(t, s, ada, p)
	assert.NotContains(t, body, sid)
	assert.Zero(t, workerDisconnects(s.worker, sid))
}

// max_packets bounds a held session only while its client is away
// (checkBounds: over && away). A client that recovers one namespace and
// not the other leaves the other's space held on a live bridge: every
// packet the worker sends there is logged as held, never sent, never
// trimmed (trimLive and pong stop at the first held entry, so nothing
// after it is trimmed either). Here the client makes the worker answer
// 30 /admin events while /admin is held, with max_packets 5: the log
// keeps all 30 (they come back when /admin is recovered), and it would
// keep growing for the session's life.
func TestAdversarialRecoverAHalfRecoveredSessionGrowsPastItsBounds(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 20s {\n\t\t\tmax_packets 5\n\t\t}", false)
	ada := testenv.Login(t, s.worker.URL(), "ada", "admin")
	pid, adminPID, _ := heldWithAdmin(t, s, ada)

	back := dialWS(t, s, ada)
	back.send(t, `40{"pid":"`+pid+`","offset":""}`)
	connectReply(t, back.read(t, "40"))
	const n = 30
	for i := range n {
		back.send(t, `42/admin,`+strconv.Itoa(100+i)+`["stats"]`)
	}
	back.echo(t, 7) // the worker answered them all by now
	back.send(t, `40/admin,{"pid":"`+adminPID+`","offset":""}`)
	r := back.read(t, "40/admin,")
	require.Contains(t, r, adminPID)
	acks := 0
	_ = back.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		_, m, err := back.conn.ReadMessage()
		if err != nil {
			break
		}
		if strings.HasPrefix(string(m), "43/admin,") {
			acks++
		}
	}
	assert.LessOrEqual(t, acks, 5, "a live session kept %d held packets with max_packets 5", acks)
}

// A config reload while a session is held and another is live: the held
// one is still recovered by its pid (the worker never sees it leave), the
// live one keeps working, and a held one left alone ends once, at the
// worker, when its window passes.
func TestAdversarialRecoverAcrossAConfigReload(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 3s", false)
	uma := testenv.Login(t, s.worker.URL(), "uma", "user")
	held := dialWS(t, s, uma)
	heldSID, pid := connectReply(t, held.connect(t, "/"))
	held.drop()
	left := dialWS(t, s, uma)
	leftSID, _ := connectReply(t, left.connect(t, "/"))
	left.drop()
	live := dialWS(t, s, uma)
	connectReply(t, live.connect(t, "/"))

	s.edge.Reload(t, s.config("max_payload 200000"))
	time.Sleep(300 * time.Millisecond)

	assert.True(t, live.echoWithin("5", 5*time.Second), "a live bridged session died on reload")
	gotSID, gotPID := connectReply(t, recoverWith(t, s, uma, "/", pid, ""))
	assert.Equal(t, heldSID, gotSID, "a held session was lost on reload")
	assert.Equal(t, pid, gotPID)
	assert.Eventually(t, func() bool { return workerDisconnects(s.worker, leftSID) == 1 }, 10*time.Second, 50*time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	assert.Equal(t, 1, workerDisconnects(s.worker, leftSID))
	assert.Zero(t, workerDisconnects(s.worker, heldSID))
}

// Engine.IO's upgrade rules on a bridged session: "5" without "2probe",
// a text "2probe" sent as binary, and an upgrade of a session that is
// already on WebSocket are refused, and the polling session goes on.
func TestAdversarialRecoverUpgradeWithoutProbeIsRefused(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 10s", false)
	sid := s.openPolling(t, "")
	for _, first := range []struct {
		mt  int
		msg string
	}{{websocket.TextMessage, "5"}, {websocket.BinaryMessage, "2probe"}, {websocket.TextMessage, "2"}} {
		up := dialUpgrade(t, s, "", sid)
		require.NoError(t, up.WriteMessage(first.mt, []byte(first.msg)))
		_ = up.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, m, err := up.ReadMessage()
		assert.Error(t, err, "%q answered %q", first.msg, m)
		up.Close()
	}
	status, body := pollPost(t, s, "", sid, `423["echo","x"]`)
	require.Equal(t, 200, status, body)
	_, body = pollGet(t, s, "", sid)
	assert.Contains(t, body, "433")
}

// Sessions recovered, adopted, held again and expired, on both
// transports, leave nothing behind: the edge's live sessions go back to
// zero and every worker session that connected "/" ended exactly once.
func TestAdversarialRecoverLeavesNoSessionBehind(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 1s", false)
	uma := testenv.Login(t, s.worker.URL(), "uma", "user")

	ws := dialWS(t, s, uma)
	_, pid := connectReply(t, ws.connect(t, "/"))
	ws.drop()
	back := dialWS(t, s, uma)
	back.send(t, `40{"pid":"`+pid+`","offset":""}`)
	back.read(t, "40")
	back.drop()

	old := pollOpen(t, s, uma)
	pollPost(t, s, uma, old, "40")
	_, body := pollGet(t, s, uma, old)
	_, ppid := connectReply(t, body)
	pollPost(t, s, uma, old, "1")
	fresh := pollOpen(t, s, uma)
	status, body := pollPost(t, s, uma, fresh, `40{"pid":"`+ppid+`","offset":""}`)
	require.Equal(t, 200, status, body)
	_, body = pollGet(t, s, uma, fresh)
	require.Contains(t, body, ppid)
	// Upgrade the recovered session, then drop it.
	up := dialUpgrade(t, s, uma, fresh)
	require.NoError(t, up.WriteMessage(websocket.TextMessage, []byte("2probe")))
	_, m, err := up.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, "3probe", string(m))
	require.NoError(t, up.WriteMessage(websocket.TextMessage, []byte("5")))
	time.Sleep(100 * time.Millisecond)
	up.UnderlyingConn().Close()

	waitRegistryEmpty(t, s.edge)
	out := s.worker.Output()
	connects := strings.Count(out, " connect namespace=/ ")
	disconnects := strings.Count(out, " disconnect namespace=/ ")
	assert.Equal(t, 2, connects, out)
	assert.Equal(t, connects, disconnects, out)
}

// A broadcast flood at a polling session that never polls, and at a held
// WebSocket session, with max_bytes 4000: the one that never polls goes
// away once its queue passes max(max_bytes, max_payload) (1 MB here),
// then both overflow their held log and end, once, at the worker.
func TestAdversarialRecoverAFloodEndsSessionsThatDoNotRead(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 30s {\n\t\t\tmax_bytes 4000\n\t\t}", false)
	ws := dialWS(t, s, "")
	wsSID, _ := connectReply(t, ws.connect(t, "/"))
	ws.send(t, `421["join","r"]`)
	ws.read(t, "431")
	ws.drop()

	p := pollOpen(t, s, "")
	pollPost(t, s, "", p, "40")
	_, body := pollGet(t, s, "", p)
	pSID, _ := connectReply(t, body)
	pollPost(t, s, "", p, `421["join","r"]`)
	// ... and never polls again.

	flood := dialWS(t, s, "")
	flood.connect(t, "/")
	big := strings.Repeat("x", 5000)
	for i := range 250 {
		id := strconv.Itoa(1000 + i)
		flood.send(t, `42`+id+`["broadcast",{"room":"r","data":"`+big+`"}]`)
	}
	flood.read(t, "431249")
	for _, sid := range []string{wsSID, pSID} {
		assert.Eventually(t, func() bool { return workerDisconnects(s.worker, sid) == 1 }, 10*time.Second, 50*time.Millisecond, sid)
	}
	assert.Contains(t, s.edge.Output(), "over its recover bounds")
}

// The same with whoami, the deployment whose roles live in the app's
// database: ada is an admin there, connects "/" and /admin, goes away;
// the database withdraws the role while her session is held. Her client
// comes back (its cookie unchanged) past whoami_ttl and the edge's role
// check interval (5 s), as a live session would have lost /admin by
// then: recovering /admin must be refused, also after "/" was recovered
// first.
func TestAdversarialRecoverARoleWithdrawnWhileHeldIsNotRecovered(t *testing.T) {
	roles := filepath.Join(t.TempDir(), "roles.json")
	require.NoError(t, os.WriteFile(roles, []byte(`{"ada": "admin"}`), 0o600))
	env := map[string]string{"ROLES_FILE": roles}
	whoami := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "whoami", SecretKey: advSecret, Env: env})
	s := startAdvStack(t, env, "whoami "+whoami.URL()+"/api/whoami\n\t\twhoami_ttl 1s", "recover 20s", false)
	ada := testenv.Login(t, s.worker.URL(), "ada", "user")

	pid, adminPID, _ := heldWithAdmin(t, s, ada)
	require.NoError(t, os.WriteFile(roles, []byte(`{"ada": "user"}`), 0o600))
	time.Sleep(6500 * time.Millisecond)

	back := dialWS(t, s, ada)
	back.send(t, `40{"pid":"`+pid+`","offset":""}`)
	_, got := connectReply(t, back.read(t, "40"))
	require.Equal(t, pid, got)
	back.send(t, `40/admin,{"pid":"`+adminPID+`","offset":""}`)
	back.send(t, `428["echo","x"]`)
	var beforeEcho []string
	for {
		m := back.read(t, "4")
		if strings.HasPrefix(m, "438") {
			break
		}
		beforeEcho = append(beforeEcho, m)
	}
	back.send(t, `42/admin,9["stats"]`)
	back.send(t, `4210["echo","y"]`)
	var afterEcho []string
	for {
		m := back.read(t, "4")
		if strings.HasPrefix(m, "4310") {
			break
		}
		afterEcho = append(afterEcho, m)
	}
	t.Logf("before the first echo: %q; after: %q", beforeEcho, afterEcho)
	for _, m := range append(beforeEcho, afterEcho...) {
		assert.False(t, strings.HasPrefix(m, "40/admin,{"), "a withdrawn role got /admin back: %s", m)
		assert.False(t, strings.HasPrefix(m, "43/admin,9"), "an /admin event answered after the role was withdrawn: %s", m)
	}
	// The worker answers in order: the CONNECT's answer (a
	// CONNECT_ERROR) comes before the echo's ack.
	answered := false
	for _, m := range beforeEcho {
		answered = answered || strings.HasPrefix(m, "44/admin,")
	}
	assert.True(t, answered, "the CONNECT to /admin got no answer before the next ack: %q", beforeEcho)
}

// Odd spellings of a recovery CONNECT: an escaped key is the same key
// (as to any JSON reader), a duplicate key's last value counts, a pid
// that is not a string ends the session; none of them crashes the edge,
// none passes a pid to the worker, and the owner's own pid still works.
func TestAdversarialRecoverOddConnectSpellings(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 20s", false)
	uma := testenv.Login(t, s.worker.URL(), "uma", "user")
	ws := dialWS(t, s, uma)
	sid, pid := connectReply(t, ws.connect(t, "/"))
	ws.drop()

	for _, c := range []string{
		`40{"pid":"` + pid + `","pid":"x","offset":""}`,
		`40{"pid":"` + pid + `","offset":"1","offset":"-1"}`,
		`40{"pid":"` + pid + `","offset":1}`,
		`40{"pid":["` + pid + `"]}`,
		`40{"pid":null}`,
		`40["` + pid + `"]`,
		`40{"pid":"` + pid + `"`,
	} {
		o := dialWS(t, s, uma)
		o.send(t, c)
		_ = o.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		for {
			_, m, err := o.conn.ReadMessage()
			if err != nil {
				break // closed: refused
			}
			if strings.HasPrefix(string(m), "4") {
				assert.NotContains(t, string(m), sid, "%s recovered", c)
				break
			}
		}
	}
	assert.NotContains(t, s.worker.Output(), pid, "a pid reached the worker")
	// The owner's own pid, its key escaped, is the same pid.
	back := dialWS(t, s, uma)
	back.send(t, `40{"p\u0069d":"`+pid+`"}`)
	gotSID, gotPID := connectReply(t, back.read(t, "40"))
	assert.Equal(t, sid, gotSID)
	assert.Equal(t, pid, gotPID)
}

// A polling client that closed its Engine.IO session ("1") is gone: the
// edge holds its Socket.IO session for recovery. Its sid still takes
// POSTs that reach the worker (serveBridged asks only whether the sid is
// the bridge's current one, not whether the client is away), so packets
// keep entering a session whose client is gone; an Engine.IO server
// answers a closed session's sid with "Session ID unknown".
func TestAdversarialRecoverAClosedPollingSidTakesNoMorePackets(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 20s", false)
	sid := s.openPolling(t, "")
	status, body := pollPost(t, s, "", sid, "1")
	require.Equal(t, 200, status, body)
	status, _ = pollPost(t, s, "", sid, `4217["echo","after close"]`)
	assert.Equal(t, 400, status, "a POST on a closed session was taken")
}

// adopt asks whether the presented namespace is held, not whether the
// session's client is away. Once one client recovered "/" of a session
// that also had /admin, a second client presenting /admin's pid adopts
// the now live session: adopt replaces b.ws with its WebSocket without
// closing the first one, whose reader keeps feeding the bridge. Two
// clients drive one session; the first one's acks go to the second.
func TestAdversarialRecoverASecondClientTakesALiveSessionByItsOtherPid(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 20s", false)
	ada := testenv.Login(t, s.worker.URL(), "ada", "admin")
	pid, adminPID, _ := heldWithAdmin(t, s, ada)

	first := dialWS(t, s, ada)
	first.send(t, `40{"pid":"`+pid+`","offset":""}`)
	_, got := connectReply(t, first.read(t, "40"))
	require.Equal(t, pid, got)

	second := dialWS(t, s, ada)
	second.send(t, `40/admin,{"pid":"`+adminPID+`","offset":""}`)
	r := second.read(t, "4")
	assert.False(t, strings.Contains(r, adminPID), "a second client took over the live session: %s", r)

	// The first client's echo is answered to it, not to the second.
	assert.True(t, first.echoWithin("31", 3*time.Second), "the live owner lost its session")
}

func dialWSOrigin(t *testing.T, s *advStack, cookie, origin string) *wsClient {
	t.Helper()
	h := http.Header{}
	if cookie != "" {
		h.Set("Cookie", cookie)
	}
	if origin != "" {
		h.Set("Origin", origin)
	}
	conn, res, err := websocket.DefaultDialer.Dial("ws://"+s.addr+"/socket.io/?EIO=4&transport=websocket", h)
	if res != nil {
		res.Body.Close()
	}
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	c := &wsClient{conn: conn}
	c.read(t, "0")
	return c
}

// A pid recovers only from the origin its session was opened from: the
// same user's connection without an Origin (a script, not the page) or
// over polling without one gets a new session; from the page's origin it
// recovers.
func TestAdversarialRecoverAPidStaysWithItsOrigin(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 20s", false)
	uma := testenv.Login(t, s.worker.URL(), "uma", "user")
	ws := dialWSOrigin(t, s, uma, advAllowed)
	sid, pid := connectReply(t, ws.connect(t, "/"))
	ws.drop()

	gotSID, _ := connectReply(t, recoverWith(t, s, uma, "/", pid, ""))
	assert.NotEqual(t, sid, gotSID, "recovered without the origin")
	p := pollOpen(t, s, uma)
	pollPost(t, s, uma, p, `40{"pid":"`+pid+`"}`)
	_, body := pollGet(t, s, uma, p)
	assert.NotContains(t, body, sid, "recovered over polling without the origin")

	back := dialWSOrigin(t, s, uma, advAllowed)
	back.send(t, `40{"pid":"`+pid+`"}`)
	gotSID, _ = connectReply(t, back.read(t, "40"))
	assert.Equal(t, sid, gotSID)
}

// heldWithAdmin connects cookie's WebSocket to "/" and "/admin", then
// drops it, so that its session is held; it returns both namespaces'
// pids and the worker's CONNECT reply for /admin.
func heldWithAdmin(t *testing.T, s *advStack, cookie string) (pid, adminPID, adminReply string) {
	t.Helper()
	ws := dialWS(t, s, cookie)
	_, pid = connectReply(t, ws.connect(t, "/"))
	adminReply = ws.connect(t, "/admin")
	require.True(t, strings.HasPrefix(adminReply, "40/admin,{"), adminReply)
	adminPID = pidPattern.FindStringSubmatch(adminReply)[1]
	ws.drop()
	return pid, adminPID, adminReply
}
