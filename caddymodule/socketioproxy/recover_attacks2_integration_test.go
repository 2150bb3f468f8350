package socketioproxy_test

// A second round of attacks on connection state recovery (recover
// <window>), on the code the first round's fixes introduced: a test here
// fails while its hole is open.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// upgradeFully upgrades polling session sid to a WebSocket (2probe,
// 3probe, 5) and returns it once an echo went round on it.
func upgradeFully(t *testing.T, s *advStack, cookie, sid string) *wsClient {
	t.Helper()
	up := dialUpgrade(t, s, cookie, sid)
	require.NoError(t, up.WriteMessage(websocket.TextMessage, []byte("2probe")))
	_ = up.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, m, err := up.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, "3probe", string(m))
	require.NoError(t, up.WriteMessage(websocket.TextMessage, []byte("5")))
	ws := &wsClient{conn: up}
	ws.echo(t, 61)
	return ws
}

// pollConnected opens a polling session as cookie, connects "/" and
// returns the sid and the pid.
func pollConnected(t *testing.T, s *advStack, cookie string) (sid, pid string) {
	t.Helper()
	sid = pollOpen(t, s, cookie)
	status, body := pollPost(t, s, cookie, sid, "40")
	require.Equal(t, 200, status, body)
	status, body = pollGet(t, s, cookie, sid)
	require.Equal(t, 200, status, body)
	_, pid = connectReply(t, body)
	return sid, pid
}

// cutPoll starts a GET of sid and cuts it before it is answered, as a
// network that goes away does; the session is held a poll grace later.
func cutPoll(t *testing.T, s *advStack, cookie, sid string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", s.url()+"/socket.io/?EIO=4&transport=polling&sid="+sid, nil)
	require.NoError(t, err)
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
		}
	}()
	// The GET waits at the edge.
	require.Eventually(t, func() bool { return inFlight(t, s.edge) >= 1 }, 5*time.Second, 10*time.Millisecond)
	cancel()
	<-done
}

// serveBridged rebases the session's live identity on every request
// that passed route() (b.live.rebase(c.id)) before poll, post or
// upgradeClient decide whether to serve it; for transport=websocket no
// resumeInPlace check comes first. A request they refuse still changes
// the session's rights: here ada, logged in as a user, upgraded her
// session to a WebSocket; a second upgrade request of the same sid
// carrying another cookie of hers (an admin one: an older login, or one
// a demotion left valid) is refused with 400 by upgradeClient, and yet
// the WebSocket, opened and used with the user cookie, now connects
// /admin. An unbridged WebSocket's rights never change by a request on
// another connection. (The worker's own check refuses this CONNECT in the
// example app, so the client gets 44/admin; the edge's rule did not: the
// worker saw it. An app that relies on the edge's namespace rules, as the
// docs allow, lets a user in.) By reading the code, a polling session's
// refused requests (a POST over max_payload, a second GET in flight)
// rebase it the same way, until its next accepted request rebases it
// back; the worker's packets filtered meanwhile pass as the refused
// request's cookie allows.
func TestAdversarialRecover2ARefusedRequestStillRebasesTheSession(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 20s", false)
	asUser := testenv.Login(t, s.worker.URL(), "ada", "user")
	asAdmin := testenv.Login(t, s.worker.URL(), "ada", "admin")
	sid, _ := pollConnected(t, s, asUser)
	ws := upgradeFully(t, s, asUser, sid)

	// Before: the user's WebSocket may not connect /admin.
	require.True(t, strings.HasPrefix(ws.connect(t, "/admin"), "44/admin,"), "control: a user connected /admin")

	// A second upgrade of the upgraded session, with the admin cookie:
	// refused with 400 before any WebSocket exists.
	_, res, err := websocket.DefaultDialer.Dial("ws://"+s.addr+"/socket.io/?EIO=4&transport=websocket&sid="+sid, http.Header{"Cookie": {asAdmin}})
	require.Error(t, err, "a second upgrade was accepted")
	require.NotNil(t, res)
	require.Equal(t, 400, res.StatusCode)

	r := ws.connect(t, "/admin")
	assert.True(t, strings.HasPrefix(r, "44/admin,"), "refused requests with an admin cookie made the user's WebSocket an admin one: %s", r)
	assert.Empty(t, adminLines(s.worker), "the worker saw a CONNECT to /admin")
}

// The Engine.IO close packet ("1") ends the client's session: nothing it
// sends after it may reach the worker (a closed sid's later POSTs are
// refused, TestAdversarialRecoverAClosedPollingSidTakesNoMorePackets).
// Packets after "1" in the same POST body still do: post() asks only
// whether the sid is still the bridge's current one. Here the echo after
// the close is answered by the worker, and its ack is replayed to the
// client that recovers the session by its pid.
func TestAdversarialRecover2PacketsAfterTheClosePacketInOneBodyReachTheWorker(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 20s", false)
	uma := testenv.Login(t, s.worker.URL(), "uma", "user")
	sid, pid := pollConnected(t, s, uma)
	status, body := pollPost(t, s, uma, sid, "1\x1e4217[\"echo\",\"after close\"]")
	require.Equal(t, 200, status, body)

	back := dialWS(t, s, uma)
	back.send(t, `40{"pid":"`+pid+`","offset":""}`)
	_, got := connectReply(t, back.read(t, "40"))
	require.Equal(t, pid, got)
	back.send(t, `4218["echo","behind"]`)
	var before []string
	for {
		m := back.read(t, "4")
		if strings.HasPrefix(m, "4318") {
			break
		}
		before = append(before, m)
	}
	for _, m := range before {
		assert.False(t, strings.HasPrefix(m, "4317"), "a packet sent after the close packet reached the worker: %s", m)
	}
}

// A held polling session taken back on its old sid by another user's
// cookie, or without a cookie, or from a foreign origin: route() refuses
// them (the sid is sealed to its user and origin), and the owner still
// resumes it in place afterwards.
func TestAdversarialRecover2OnlyTheOwnerResumesInPlace(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 20s", false)
	uma := testenv.Login(t, s.worker.URL(), "uma", "user")
	ada := testenv.Login(t, s.worker.URL(), "ada", "user")
	sid, _ := pollConnected(t, s, uma)
	cutPoll(t, s, uma, sid)
	require.Eventually(t, func() bool { return metric(t, s.edge, "caddy_socketio_sessions_held") == 1 },
		5*time.Second, 20*time.Millisecond, "the session is held")

	for _, h := range []map[string]string{
		{"Cookie": ada}, {}, {"Cookie": uma, "Origin": advForeign},
	} {
		status, body := s.request(t, "GET", "/socket.io/?EIO=4&transport=polling&sid="+sid, "", h)
		assert.NotEqual(t, 200, status, "%v resumed uma's session: %s", h, body)
		status, body = s.request(t, "POST", "/socket.io/?EIO=4&transport=polling&sid="+sid, `4219["echo","x"]`, h)
		assert.NotEqual(t, 200, status, "%v posted into uma's held session: %s", h, body)
	}
	assert.Equal(t, 1.0, metric(t, s.edge, "caddy_socketio_sessions_held"), "still held")

	status, body := pollPost(t, s, uma, sid, `4220["echo","back"]`)
	require.Equal(t, 200, status, body)
	status, body = pollGet(t, s, uma, sid)
	require.Equal(t, 200, status, body)
	assert.Contains(t, body, "4320")
	assert.NotContains(t, body, "4319")
	assert.Zero(t, metric(t, s.edge, "caddy_socketio_sessions_held"))
}

// What the worker sent a polling session for a namespace is held in the
// bridge's queue as the edge's filters let it pass when it arrived (the
// identity of that moment), and a poll delivers the queue as it is. A
// client that comes back in place on its old sid (resumeInPlace) with a
// cookie that no longer admits it to /admin (ada demoted: her new cookie
// says role user) gets /admin's data that waited while she was away:
// resumeInPlace restores every namespace without asking the rule, and the
// poll does not filter by the request's identity. An unbridged polling
// session filters what a poll returns by that poll's cookie (control
// below), and adopt asks the rule (recoverConnect) before restoring.
// The root is not only resumeInPlace: a bridged polling session that
// never went away delivers its queue the same way ("never away": the
// demoted cookie's first poll gets /admin's answer).
func TestAdversarialRecover2ResumeInPlaceDeliversANamespaceTheUserLost(t *testing.T) {
	for _, tc := range []struct {
		name, opts string
		away       bool
	}{{"unbridged", "", true}, {"bridged", "recover 20s", true}, {"bridged, never away", "recover 20s", false}} {
		t.Run(tc.name, func(t *testing.T) {
			s := startAdvStack(t, nil, "", tc.opts, false)
			asAdmin := testenv.Login(t, s.worker.URL(), "ada", "admin")
			asUser := testenv.Login(t, s.worker.URL(), "ada", "user")
			sid := pollOpen(t, s, asAdmin)
			status, body := pollPost(t, s, asAdmin, sid, "40\x1e40/admin,")
			require.Equal(t, 200, status, body)
			var got string
			require.Eventually(t, func() bool {
				_, b := pollGet(t, s, asAdmin, sid)
				got += b
				return strings.Contains(got, "40/admin,{")
			}, 5*time.Second, 10*time.Millisecond, got)
			// /admin's answer comes while the client polls no more.
			before := metric(t, s.edge, "caddy_socketio_messages_total")
			status, body = pollPost(t, s, asAdmin, sid, `42/admin,9["stats"]`)
			require.Equal(t, 200, status, body)
			switch {
			case !tc.away:
				// The worker's answer is in the bridge's queue: the
				// POST and the answer counted.
				require.Eventually(t, func() bool {
					return metric(t, s.edge, "caddy_socketio_messages_total") >= before+2
				}, 5*time.Second, 10*time.Millisecond)
			case tc.opts != "":
				require.Eventually(t, func() bool { return metric(t, s.edge, "caddy_socketio_sessions_held") == 1 },
					5*time.Second, 20*time.Millisecond, "the session is held")
			default:
				// Unbridged: the answer waits at the worker, and
				// the poll's own filter sees it, whenever it comes.
			}
			// Back on the same sid, demoted.
			status, body = pollGet(t, s, asUser, sid)
			t.Logf("%d %q", status, body)
			assert.NotContains(t, body, `43/admin,9`, "a demoted user's poll returned /admin's data")
		})
	}
}

// adopt arms spacesT to give up, at the end of what is left of the
// window, the namespaces the client has not connected again; nothing
// stops that timer when the client does reconnect them, nor when the
// session goes away again and is adopted again (b.spacesT is just
// overwritten). Here ada's session with "/" and /admin goes away (T0),
// a new connection recovers both at once, goes away too (T1) and a third
// recovers "/" only: the first adopt's timer fires at T0+window and gives
// /admin up at the worker, while its second window runs until
// T1+window; the client that comes back for /admin within it is refused.
func TestAdversarialRecover2AnEarlierAdoptsTimerGivesUpANamespaceTooSoon(t *testing.T) {
	const window = 4 * time.Second
	s := startAdvStack(t, nil, "", "recover 4s", false)
	ada := testenv.Login(t, s.worker.URL(), "ada", "admin")
	pid, adminPID, reply := heldWithAdmin(t, s, ada)
	adminSID := socketSIDPattern.FindStringSubmatch(reply)[1]
	t0 := time.Now()
	require.Eventually(t, func() bool { return metric(t, s.edge, "caddy_socketio_sessions_held") == 1 },
		5*time.Second, 10*time.Millisecond)

	second := dialWS(t, s, ada)
	second.send(t, `40{"pid":"`+pid+`","offset":""}`)
	connectReply(t, second.read(t, "40"))
	second.send(t, `40/admin,{"pid":"`+adminPID+`","offset":""}`)
	require.Contains(t, second.read(t, "40/admin,"), adminPID, "/admin recovered")
	// The second connection lives a while (1.5 s), then goes away.
	n := 0
	require.Eventually(t, func() bool {
		n++
		require.True(t, second.echoWithin(strconv.Itoa(100+n), 2*time.Second))
		return time.Since(t0) > 1500*time.Millisecond
	}, 5*time.Second, 50*time.Millisecond)
	second.drop()
	t1 := time.Now()
	require.Eventually(t, func() bool { return metric(t, s.edge, "caddy_socketio_sessions_held") == 1 },
		5*time.Second, 10*time.Millisecond)

	third := dialWS(t, s, ada)
	third.send(t, `40{"pid":"`+pid+`","offset":""}`)
	connectReply(t, third.read(t, "40"))

	// Until the second window ends, /admin stays connected at the worker.
	adminGone := func() bool {
		return strings.Contains(s.worker.Output(), "disconnect namespace=/admin")
	}
	var goneAt time.Time
	require.Eventually(t, func() bool {
		if adminGone() {
			goneAt = time.Now()
			return true
		}
		return time.Since(t0) > window+500*time.Millisecond
	}, 2*window, 20*time.Millisecond)
	if !goneAt.IsZero() {
		assert.GreaterOrEqual(t, goneAt.Sub(t1), window-100*time.Millisecond,
			"/admin was given up %v after the client went away the second time, within its window of %v (by the first adopt's timer; the second trip began %v after the first)",
			goneAt.Sub(t1).Round(time.Millisecond), window, t1.Sub(t0).Round(time.Millisecond))
	}
	if time.Since(t1) < window-300*time.Millisecond {
		third.send(t, `40/admin,{"pid":"`+adminPID+`","offset":""}`)
		r := third.read(t, "4")
		// Not recovered, the CONNECT goes on as a new socket (whose
		// pid is the same: same bridge, same namespace).
		assert.Contains(t, r, adminSID, "/admin not recovered within its window: %s", r)
	}
}

// Polling sessions held, taken back in place, held again, closed, expired
// and upgraded after an in-place return leave nothing behind: the held
// gauge and the live sessions go back to zero, every worker session that
// connected "/" ended exactly once, and an old sid whose window passed is
// not revived.
func TestAdversarialRecover2InPlaceReturnsLeaveNothingBehind(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 1500ms", false)
	uma := testenv.Login(t, s.worker.URL(), "uma", "user")
	held := func(n float64) {
		t.Helper()
		require.Eventually(t, func() bool { return metric(t, s.edge, "caddy_socketio_sessions_held") == n },
			5*time.Second, 10*time.Millisecond, "held %v", n)
	}

	// Back in place twice, then upgraded, then dropped: expires.
	a, _ := pollConnected(t, s, uma)
	held(1)
	status, body := pollPost(t, s, uma, a, `421["echo","a"]`)
	require.Equal(t, 200, status, body)
	held(0)
	_, body = pollGet(t, s, uma, a)
	require.Contains(t, body, "431")
	held(1)
	status, body = pollPost(t, s, uma, a, `423["echo","a2"]`)
	require.Equal(t, 200, status, body)
	_, body = pollGet(t, s, uma, a)
	require.Contains(t, body, "433")
	held(0)
	ws := upgradeFully(t, s, uma, a)
	ws.drop()

	// Closed ("1"): not taken back in place; expires.
	b, _ := pollConnected(t, s, uma)
	status, body = pollPost(t, s, uma, b, "1")
	require.Equal(t, 200, status, body)
	status, body = pollGet(t, s, uma, b)
	assert.Equal(t, "1", body, "a closed session's sid polled: %d", status)

	// Left alone: expires, and its sid stays dead.
	c, _ := pollConnected(t, s, uma)
	held(3)
	held(0)
	status, body = pollGet(t, s, uma, c)
	assert.NotEqual(t, 200, status, "an expired session's sid was served: %s", body)
	status, body = pollPost(t, s, uma, c, `422["echo","c"]`)
	assert.NotEqual(t, 200, status, "an expired session's sid took a POST: %s", body)

	waitRegistryEmpty(t, s.edge)
	out := s.worker.Output()
	connects := strings.Count(out, " connect namespace=/ ")
	require.Eventually(t, func() bool {
		return strings.Count(s.worker.Output(), " disconnect namespace=/ ") == connects
	}, 5*time.Second, 20*time.Millisecond, s.worker.Output())
	assert.Equal(t, 3, connects)
	assert.Zero(t, metric(t, s.edge, "caddy_socketio_sessions_held"))
}

// After an adopt that recovered "/" only, /admin stays held until the
// spacesT timer gives it up at the window's end. If the adopting
// (polling) session goes away and comes back in place before then,
// resumeInPlace clears the held mark of every namespace, /admin included,
// although this client never connected /admin on its new session: the
// timer then finds nothing held, and /admin stays connected at the worker
// for the rest of the session, a socket no client has (its events are
// sent to a client that has no /admin socket, and held and replayed as
// if it had).
func TestAdversarialRecover2AnInPlaceReturnKeepsANamespaceNobodyRecovered(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 3s", false)
	ada := testenv.Login(t, s.worker.URL(), "ada", "admin")
	held := func(n float64) {
		t.Helper()
		require.Eventually(t, func() bool { return metric(t, s.edge, "caddy_socketio_sessions_held") == n },
			5*time.Second, 10*time.Millisecond, "held %v", n)
	}
	a, pid := pollConnected(t, s, ada)
	status, body := pollPost(t, s, ada, a, "40/admin,")
	require.Equal(t, 200, status, body)
	_, body = pollGet(t, s, ada, a)
	require.Contains(t, body, "40/admin,{")
	held(1) // a stopped polling

	n := pollOpen(t, s, ada)
	status, body = pollPost(t, s, ada, n, `40{"pid":"`+pid+`","offset":""}`)
	require.Equal(t, 200, status, body)
	_, body = pollGet(t, s, ada, n)
	require.Contains(t, body, pid, "recovered")
	held(0)
	held(1) // n stopped polling
	status, body = pollPost(t, s, ada, n, `424["echo","n"]`)
	require.Equal(t, 200, status, body)
	_, body = pollGet(t, s, ada, n)
	require.Contains(t, body, "434", "back in place")
	ws := upgradeFully(t, s, ada, n)
	go func() {
		for ws.echoWithin("9", 10*time.Second) {
		}
	}()

	assert.Eventually(t, func() bool {
		return strings.Contains(s.worker.Output(), "disconnect namespace=/admin")
	}, 6*time.Second, 20*time.Millisecond, "/admin, never connected by the client's session, was never given up at the worker")
}

// A drained worker's held session ends by drain_timeout like a live one
// (its worker session ends once), and a client that comes back with its
// pid meanwhile gets a session on the other worker or its own, never
// both; the edge's graceful stop then ends every session held or live at
// the worker once.
func TestAdversarialRecover2DrainAndStopEndHeldSessions(t *testing.T) {
	url, edge, workers := twoWorkerStack(t, "recover 20s")
	addr := strings.TrimPrefix(url, "http://")
	s := &advStack{addr: addr, edge: edge}
	var heldSIDs []string
	var pids []string
	// Sessions on both workers, held.
	for range 4 {
		ws := dialWS(t, s, "")
		sid, pid := connectReply(t, ws.connect(t, "/"))
		ws.drop()
		heldSIDs, pids = append(heldSIDs, sid), append(pids, pid)
	}
	onA := func(sid string) bool { return strings.Contains(workers[0].Output(), "connect namespace=/ sid="+sid) }
	disconnects := func(sid string) int {
		return strings.Count(workers[0].Output()+workers[1].Output(), "disconnect namespace=/ sid="+sid)
	}
	require.Eventually(t, func() bool { return metric(t, edge, "caddy_socketio_sessions_held") == 4 },
		5*time.Second, 10*time.Millisecond)
	status, body := adminDo(t, edge, http.MethodPost, "/socketio/upstreams/"+workers[0].Addr+"/drain")
	require.Equal(t, http.StatusOK, status, body)
	var back []*wsClient
	for i, pid := range pids {
		if !onA(heldSIDs[i]) {
			continue
		}
		c := dialWS(t, s, "")
		c.send(t, `40{"pid":"`+pid+`","offset":""}`)
		c.read(t, "40")
		back = append(back, c)
		break
	}
	for i, sid := range heldSIDs {
		if onA(sid) {
			assert.Eventually(t, func() bool { return disconnects(sid) == 1 }, 5*time.Second, 20*time.Millisecond,
				"held session %d on the drained worker still there after drain_timeout", i)
		}
	}
	edge.Stop(t)
	for i, sid := range heldSIDs {
		assert.Eventually(t, func() bool { return disconnects(sid) == 1 }, 5*time.Second, 20*time.Millisecond,
			"session %d not ended once at the worker by the edge's stop: %d", i, disconnects(sid))
	}
}

// twoWorkerStack is drainStack without the Node probe and Redis.
func twoWorkerStack(t *testing.T, extra string) (url string, edge *testenv.Edge, workers []*testenv.FlaskWorker) {
	t.Helper()
	for _, name := range []string{"A", "B"} {
		workers = append(workers, testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: name, SecretKey: "drain-secret"}))
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	edge = testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%s {
	bind 127.0.0.1
	log {
		level INFO
	}
	socketio_proxy {
		to %s %s
		sticky_secret %s
		drain_timeout 2s
%s
	}
}
`, addr, workers[0].Addr, workers[1].Addr, stickySecret, extra)), addr)
	return "http://" + addr, edge, workers
}

// A session opened on WebSocket (or upgraded to it) whose WebSocket
// dropped is held; its sid is a WebSocket session's, and Engine.IO never
// goes back from WebSocket to polling. resumeInPlace asks only whether
// the bridge has a WebSocket now (b.ws, cleared by goAway), so a polling
// GET or POST on the dropped WebSocket's sid takes the held session back
// in place, over polling: the held session is revived outside the
// recovery protocol (no pid, no offset, no rule check of adopt), and the
// packets held for a pid-based recovery go out on a transport the client
// never uses.
func TestAdversarialRecover2ADroppedWebSocketSidIsNotTakenBackByPolling(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 20s", false)
	uma := testenv.Login(t, s.worker.URL(), "uma", "user")
	conn, res, err := websocket.DefaultDialer.Dial("ws://"+s.addr+"/socket.io/?EIO=4&transport=websocket", http.Header{"Cookie": {uma}})
	if res != nil {
		res.Body.Close()
	}
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	ws := &wsClient{conn: conn}
	m := sidPattern.FindStringSubmatch(ws.read(t, "0"))
	require.NotNil(t, m)
	sid := m[1]
	connectReply(t, ws.connect(t, "/"))
	ws.drop()
	require.Eventually(t, func() bool { return metric(t, s.edge, "caddy_socketio_sessions_held") == 1 },
		5*time.Second, 10*time.Millisecond)
	status, body := pollPost(t, s, uma, sid, `4225["echo","by polling"]`)
	assert.NotEqual(t, 200, status, "a POST over polling on a dropped WebSocket's sid was taken: %s", body)
	assert.Equal(t, 1.0, metric(t, s.edge, "caddy_socketio_sessions_held"), "the held session was taken back over polling")
}

// An upgrade whose request reached the client's new session before its
// CONNECT recovered the held one, and whose probe came after: the probe
// marked the new session's bridge (which the recovery ends) as probed,
// not the held one now serving the sid, so the client's poll waited
// there for the next ping instead of ending with a noop. socket.io-client
// waits for that poll before it finishes the upgrade and holds what it
// emits meanwhile, so its emits went unanswered for a ping interval (a
// lost count_acks in TestRecoveryOfflineInsideTheWindowKeepsTheSession,
// "default", about one run in twenty).
func TestAdversarialRecover2AnUpgradeProbedAcrossTheRecoveryEndsThePoll(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 20s", false)
	uma := testenv.Login(t, s.worker.URL(), "uma", "user")
	sid, pid := pollConnected(t, s, uma)
	cutPoll(t, s, uma, sid)
	require.Eventually(t, func() bool { return metric(t, s.edge, "caddy_socketio_sessions_held") == 1 },
		5*time.Second, 20*time.Millisecond, "the session is held")

	fresh := pollOpen(t, s, uma)
	up := dialUpgrade(t, s, uma, fresh) // before the recovery
	status, body := pollPost(t, s, uma, fresh, `40{"pid":"`+pid+`","offset":""}`)
	require.Equal(t, 200, status, body)
	status, body = pollGet(t, s, uma, fresh)
	require.Equal(t, 200, status, body)
	_, got := connectReply(t, body)
	require.Equal(t, pid, got, "recovered")

	// The next poll waits; the probe then ends it with a noop.
	type answer struct {
		body string
		err  error
	}
	polled := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("GET", s.url()+"/socket.io/?EIO=4&transport=polling&sid="+fresh, nil)
		req.Header.Set("Cookie", uma)
		res, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
		if err != nil {
			polled <- answer{err: err}
			return
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		polled <- answer{string(b), err}
	}()
	require.Eventually(t, func() bool { return inFlight(t, s.edge) >= 1 }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, up.WriteMessage(websocket.TextMessage, []byte("2probe")))
	_ = up.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, m, err := up.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, "3probe", string(m))
	select {
	case a := <-polled:
		require.NoError(t, a.err)
		assert.Equal(t, "6", a.body, "the waiting poll ends with a noop")
	case <-time.After(3 * time.Second):
		t.Fatal("the waiting poll did not end after the probe: the client cannot finish its upgrade")
	}
	require.NoError(t, up.WriteMessage(websocket.TextMessage, []byte("5")))
	ws := &wsClient{conn: up}
	ws.echo(t, 62)
}
