package socketioproxy_test

// Connection state recovery against the real stack, spoken by hand over
// WebSockets so each attack on a pid is exact: a pid recovers only its own
// held session, for its own user, origin, namespace and edge, within the
// window; everything else is a clean new session.

import (
	"strconv"

	"encoding/base64"
	"github.com/gorilla/websocket"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

var (
	pidPattern       = regexp.MustCompile(`"pid":"([^"]+)"`)
	socketSIDPattern = regexp.MustCompile(`"sid":"([^"]+)"`)
)

// connectReply reads a CONNECT reply's socket sid and pid.
func connectReply(t *testing.T, reply string) (sid, pid string) {
	t.Helper()
	require.True(t, strings.HasPrefix(reply, "40"), reply)
	s := socketSIDPattern.FindStringSubmatch(reply)
	require.NotNil(t, s, reply)
	p := pidPattern.FindStringSubmatch(reply)
	require.NotNil(t, p, "no pid in %s", reply)
	return s[1], p[1]
}

// drop cuts the client's TCP connection without a close frame, as a
// network that goes away does.
func (c *wsClient) drop() { c.conn.UnderlyingConn().Close() }

// recoverWith connects ns on a new session presenting pid and offset, and
// returns the reply.
func recoverWith(t *testing.T, s *advStack, cookie, ns, pid, offset string) string {
	t.Helper()
	ws := dialWS(t, s, cookie)
	prefix := "40"
	if ns != "/" {
		prefix += ns + ","
	}
	ws.send(t, prefix+`{"pid":"`+pid+`","offset":"`+offset+`"}`)
	return ws.read(t, "4")
}

func workerDisconnects(w *testenv.FlaskWorker, sid string) int {
	return strings.Count(w.Output(), "disconnect namespace=/ sid="+sid)
}

func TestRecoverAHeldWebSocketSessionComesBackWithItsEvents(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 10s", false)
	user := testenv.Login(t, s.worker.URL(), "uma", "user")
	ws := dialWS(t, s, user)
	sid, pid := connectReply(t, ws.connect(t, "/"))
	ws.send(t, `421["join","r"]`)
	ws.read(t, "431")
	ws.drop()

	// While it is away, another client broadcasts to its room.
	other := dialWS(t, s, "")
	other.connect(t, "/")
	for i := range 3 {
		other.send(t, `42`+string(rune('5'+i))+`["broadcast",{"room":"r","data":"away"}]`)
		other.read(t, "43"+string(rune('5'+i)))
	}

	back := dialWS(t, s, user)
	back.send(t, `40{"pid":"`+pid+`"}`)
	gotSID, gotPID := connectReply(t, back.read(t, "40"))
	assert.Equal(t, sid, gotSID, "the same socket")
	assert.Equal(t, pid, gotPID, "the same pid: socket.recovered is true")
	for i := 1; i <= 3; i++ {
		ev := back.read(t, "42")
		assert.Contains(t, ev, `"away"`)
		assert.True(t, strings.HasSuffix(ev, `,"`+string(rune('0'+i))+`"]`), "offset %d last: %s", i, ev)
	}
	back.echo(t, 9)
	assert.Zero(t, workerDisconnects(s.worker, sid), "the worker never saw the client leave")
	assert.Equal(t, 1, strings.Count(s.worker.Output(), "connect namespace=/ sid="+sid)-workerDisconnects(s.worker, sid))
}

// A pid with one bit changed, one of another namespace, one presented by
// another user, or one carried in a CONNECT of a session that already
// connected a namespace: a new session each time (recovered false), the
// held session untouched and still recoverable by its owner.
func TestAdversarialRecoverForgedOrBorrowedPidsNeverRecover(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 20s", false)
	uma := testenv.Login(t, s.worker.URL(), "uma", "user")
	ada := testenv.Login(t, s.worker.URL(), "ada", "admin")
	ws := dialWS(t, s, uma)
	sid, pid := connectReply(t, ws.connect(t, "/"))
	ws.drop()

	raw, err := base64.RawURLEncoding.DecodeString(pid)
	require.NoError(t, err)
	for i := range raw {
		forged := append([]byte(nil), raw...)
		forged[i] ^= 1
		if i%7 != 0 && i != len(raw)-1 {
			continue // a sample of positions: edge id, session id, MAC
		}
		gotSID, gotPID := connectReply(t, recoverWith(t, s, uma, "/", base64.RawURLEncoding.EncodeToString(forged), "0"))
		assert.NotEqual(t, sid, gotSID, "forged byte %d recovered", i)
		assert.NotEqual(t, pid, gotPID)
	}
	// Non-canonical spellings of the same pid.
	for _, p := range []string{pid + "=", strings.ToUpper(pid[:1]) + pid[1:] + "A", " " + pid} {
		reply := recoverWith(t, s, uma, "/", p, "0")
		if strings.HasPrefix(reply, "40{") {
			gotSID, _ := connectReply(t, reply)
			assert.NotEqual(t, sid, gotSID, "pid %q recovered", p)
		}
	}
	// Another user, and no user, with the right pid.
	for _, cookie := range []string{ada, ""} {
		gotSID, _ := connectReply(t, recoverWith(t, s, cookie, "/", pid, "0"))
		assert.NotEqual(t, sid, gotSID, "another user recovered uma's session")
	}
	// The pid of "/" on another namespace.
	reply := recoverWith(t, s, ada, "/admin", pid, "0")
	assert.False(t, strings.Contains(reply, sid), reply)
	// An offset the edge never sent.
	for _, off := range []string{"999", "-1", "01", "1e3"} {
		gotSID, _ := connectReply(t, recoverWith(t, s, uma, "/", pid, off))
		assert.NotEqual(t, sid, gotSID, "offset %q recovered", off)
	}
	// A session that already connected a namespace cannot adopt one.
	busy := dialWS(t, s, uma)
	busy.connect(t, "/admin") // refused for uma, but sent
	busy.connect(t, "/")
	busy.send(t, `40{"pid":"`+pid+`"}`)
	// (a second CONNECT to "/" of a connected socket; the worker answers)
	busy.read(t, "4")

	assert.Contains(t, s.edge.Output(), `"event":"recovery_refused"`)
	assert.Zero(t, workerDisconnects(s.worker, sid))
	// The owner still gets it back.
	gotSID, gotPID := connectReply(t, recoverWith(t, s, uma, "/", pid, ""))
	assert.Equal(t, sid, gotSID)
	assert.Equal(t, pid, gotPID)
}

// Past the window the worker's session ends (its disconnect handler runs
// once) and the pid recovers nothing.
func TestRecoverPastTheWindowIsANewSession(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 1s", false)
	ws := dialWS(t, s, "")
	sid, pid := connectReply(t, ws.connect(t, "/"))
	ws.drop()
	require.Eventually(t, func() bool { return workerDisconnects(s.worker, sid) == 1 }, 10*time.Second, 20*time.Millisecond)
	gotSID, gotPID := connectReply(t, recoverWith(t, s, "", "/", pid, ""))
	assert.NotEqual(t, sid, gotSID)
	assert.NotEqual(t, pid, gotPID)
	assert.Equal(t, 1, workerDisconnects(s.worker, sid))
	assert.Contains(t, s.edge.Output(), "held Socket.IO session ended: expired")
}

// A held session whose worker sends more than max_packets ends at once,
// and its pid no longer recovers.
func TestRecoverAHeldSessionOverItsBoundsEnds(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 30s {\n\t\t\tmax_packets 3\n\t\t}", false)
	ws := dialWS(t, s, "")
	sid, pid := connectReply(t, ws.connect(t, "/"))
	ws.send(t, `421["join","r"]`)
	ws.read(t, "431")
	ws.drop()
	other := dialWS(t, s, "")
	other.connect(t, "/")
	for i := range 6 {
		other.send(t, `42`+string(rune('1'+i))+`["broadcast",{"room":"r","data":"x"}]`)
		other.read(t, "43"+string(rune('1'+i)))
	}
	require.Eventually(t, func() bool { return workerDisconnects(s.worker, sid) == 1 }, 10*time.Second, 20*time.Millisecond)
	gotSID, _ := connectReply(t, recoverWith(t, s, "", "/", pid, ""))
	assert.NotEqual(t, sid, gotSID)
	assert.Contains(t, s.edge.Output(), "over its recover bounds")
}

// A namespace the client left by its own DISCONNECT is not held: a client
// that disconnects on purpose ends its session at once.
func TestRecoverAClientThatLeftOnPurposeIsNotHeld(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 30s", false)
	ws := dialWS(t, s, "")
	sid, _ := connectReply(t, ws.connect(t, "/"))
	ws.send(t, "41")
	ws.drop()
	require.Eventually(t, func() bool { return workerDisconnects(s.worker, sid) == 1 }, 10*time.Second, 20*time.Millisecond)
}

// rawSession is one hand-spoken WebSocket session for the benchmark.
type rawSession struct {
	conn *websocket.Conn
	pid  string
}

func dialRaw(tb testing.TB, addr string) *websocket.Conn {
	conn, res, err := websocket.DefaultDialer.Dial("ws://"+addr+"/socket.io/?EIO=4&transport=websocket", nil)
	if res != nil {
		res.Body.Close()
	}
	require.NoError(tb, err)
	readPrefix(tb, conn, "0")
	return conn
}

func readPrefix(tb testing.TB, conn *websocket.Conn, prefix string) string {
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		_, msg, err := conn.ReadMessage()
		require.NoError(tb, err, "waiting for %q", prefix)
		if string(msg) == "2" {
			require.NoError(tb, conn.WriteMessage(websocket.TextMessage, []byte("3")))
			continue
		}
		if strings.HasPrefix(string(msg), prefix) {
			return string(msg)
		}
	}
}

// holdSessions opens n sessions in room, then drops them all: the edge
// holds n worker sessions.
func holdSessions(tb testing.TB, s *advStack, n int, room string) []string {
	pids := make([]string, n)
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		conns[i] = dialRaw(tb, s.addr)
		require.NoError(tb, conns[i].WriteMessage(websocket.TextMessage, []byte("40")))
		reply := readPrefix(tb, conns[i], "40")
		pids[i] = pidPattern.FindStringSubmatch(reply)[1]
		require.NoError(tb, conns[i].WriteMessage(websocket.TextMessage, []byte(`421["join","`+room+`"]`)))
		readPrefix(tb, conns[i], "431")
	}
	for _, c := range conns {
		c.UnderlyingConn().Close()
	}
	require.Eventually(tb, func() bool { return metric(tb, s.edge, "caddy_socketio_sessions_held") >= float64(n) },
		30*time.Second, 20*time.Millisecond)
	return pids
}

// recoverAll recovers every pid, reading each session's replay of k
// events, and returns the edge's CPU seconds spent.
func recoverAll(tb testing.TB, s *advStack, pids []string, k int) float64 {
	before := metric(tb, s.edge, "process_cpu_seconds_total")
	for _, pid := range pids {
		c := dialRaw(tb, s.addr)
		require.NoError(tb, c.WriteMessage(websocket.TextMessage, []byte(`40{"pid":"`+pid+`"}`)))
		require.Equal(tb, pid, pidPattern.FindStringSubmatch(readPrefix(tb, c, "40"))[1])
		for range k {
			readPrefix(tb, c, "42")
		}
		c.Close()
	}
	return metric(tb, s.edge, "process_cpu_seconds_total") - before
}

// BenchmarkRecoverHeldSession reports what a held session costs the edge:
// Go heap per held session (empty, and with the packets it holds), and
// CPU per replayed packet (two rounds of recoveries, with and without
// packets to replay, so the new session's handshake cancels out). A
// figure, not a time (docs/BENCHMARKS.md). Run it with -benchtime 1x.
func BenchmarkRecoverHeldSession(b *testing.B) {
	const (
		n = 300 // sessions held at once
		k = 100 // packets each one holds
	)
	s := startAdvStack(b, nil, "", "recover 5m {\n\t\t\tmax_packets 1000\n\t\t}", true)
	sender := dialRaw(b, s.addr)
	require.NoError(b, sender.WriteMessage(websocket.TextMessage, []byte("40")))
	readPrefix(b, sender, "40")
	var heapEmpty, heapFull, cpuPerPacket float64
	for b.Loop() {
		base := heapInuse(b, s.edge)
		pids := holdSessions(b, s, n, "empty")
		heapEmpty = (heapInuse(b, s.edge) - base) / n
		cpu0 := recoverAll(b, s, pids, 0)

		base = heapInuse(b, s.edge)
		pids = holdSessions(b, s, n, "full")
		payload := strings.Repeat("x", 64)
		for i := range k {
			id := strconv.Itoa(i + 10)
			require.NoError(b, sender.WriteMessage(websocket.TextMessage,
				[]byte(`42`+id+`["broadcast",{"room":"full","data":"`+payload+`"}]`)))
			readPrefix(b, sender, "43"+id)
		}
		require.Eventually(b, func() bool {
			return metric(b, s.edge, "caddy_socketio_messages_total") > 0
		}, 5*time.Second, 20*time.Millisecond)
		heapFull = (heapInuse(b, s.edge) - base) / n
		cpuK := recoverAll(b, s, pids, k)
		cpuPerPacket = (cpuK - cpu0) / float64(n*k)
	}
	b.ReportMetric(heapEmpty/1024, "KiB-heap/held-session")
	b.ReportMetric(heapFull/1024, "KiB-heap/held-session-with-100-packets")
	b.ReportMetric(cpuPerPacket*1e6, "µs-cpu/replayed-packet")
}

// While the client is away the edge answers the worker's pings: a
// session held for several of the worker's ping timeouts is still there,
// and the worker never saw a disconnect.
func TestRecoverTheEdgeAnswersTheWorkersPingsWhileTheClientIsAway(t *testing.T) {
	s := startAdvStack(t, map[string]string{"PING_INTERVAL": "1", "PING_TIMEOUT": "1"}, "", "recover 30s", true)
	ws := dialWS(t, s, "")
	sid, pid := connectReply(t, ws.connect(t, "/"))
	ws.drop()
	// The worker's messages to the held session are its pings: wait for
	// five of them, well past its 1 s ping timeout.
	fromWorker := func() float64 {
		return metric(t, s.edge, `caddy_socketio_messages_total{direction="upstream_to_client",transport="polling"}`) +
			metric(t, s.edge, `caddy_socketio_messages_total{direction="upstream_to_client",transport="websocket"}`)
	}
	require.Eventually(t, func() bool { return metric(t, s.edge, "caddy_socketio_sessions_held") == 1 }, 10*time.Second, 20*time.Millisecond)
	before := fromWorker()
	require.Eventually(t, func() bool { return fromWorker() >= before+5 }, 20*time.Second, 50*time.Millisecond)
	gotSID, gotPID := connectReply(t, recoverWith(t, s, "", "/", pid, ""))
	assert.Equal(t, sid, gotSID)
	assert.Equal(t, pid, gotPID)
	assert.Zero(t, workerDisconnects(s.worker, sid))
}

// A session recovered one namespace at a time: what the worker sends to
// a namespace the client has not connected again yet waits for that
// namespace's replay, and arrives once.
func TestRecoverANamespaceStillHeldGetsItsPacketsOnceWithItsReplay(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 20s", false)
	ada := testenv.Login(t, s.worker.URL(), "ada", "admin")
	ws := dialWS(t, s, ada)
	_, rootPID := connectReply(t, ws.connect(t, "/"))
	_, adminPID := connectReply(t, ws.connect(t, "/admin"))
	ws.send(t, `421["join","r"]`)
	ws.read(t, "431")
	ws.drop()

	back := dialWS(t, s, ada)
	back.send(t, `40/admin,{"pid":"`+adminPID+`"}`)
	_, got := connectReply(t, back.read(t, "40/admin,"))
	require.Equal(t, adminPID, got)

	// "/" is still held: a broadcast to its room now waits.
	other := dialWS(t, s, "")
	other.connect(t, "/")
	other.send(t, `425["broadcast",{"room":"r","data":"while / is held"}]`)
	other.read(t, "435")
	back.send(t, `42/admin,6["stats"]`)
	back.read(t, "43/admin,6")

	back.send(t, `40{"pid":"`+rootPID+`"}`)
	var seen []string
	_ = back.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	back.send(t, `427["echo","last"]`)
	for {
		_, msg, err := back.conn.ReadMessage()
		require.NoError(t, err)
		m := string(msg)
		if m == "2" {
			back.send(t, "3")
			continue
		}
		seen = append(seen, m)
		if strings.HasPrefix(m, "437") {
			break
		}
	}
	require.NotEmpty(t, seen)
	assert.True(t, strings.HasPrefix(seen[0], `40{"sid"`), "the CONNECT reply of / first: %q", seen)
	n := 0
	for _, m := range seen {
		if strings.Contains(m, "while / is held") {
			n++
		}
	}
	assert.Equal(t, 1, n, "the broadcast to the held namespace, once: %q", seen)
}

// A bridged polling session over its message rate ends as an unbridged
// one does: its POST and its waiting poll both get 429 with Retry-After,
// which the client waits out (a close packet on the poll would look like
// a lost worker, and the client would come back at once).
func TestRecoverABridgedPollingSessionOverItsRateGets429OnBothRequests(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 10s\n\t\trate_limit messages 5/10s", true)
	sid := s.openPolling(t, "")
	poll := "/socket.io/?EIO=4&transport=polling&sid=" + sid
	waiting := make(chan int, 1)
	go func() {
		status, _ := s.request(t, "GET", poll, "", nil)
		waiting <- status
	}()
	require.Eventually(t, func() bool { return inFlight(t, s.edge) >= 1 }, 5*time.Second, 10*time.Millisecond)
	body := strings.Repeat(`42["echo","x"]`+"\x1e", 9) + `42["echo","x"]`
	status, reply := s.request(t, "POST", poll, body, nil)
	assert.Equal(t, 429, status, reply)
	select {
	case st := <-waiting:
		assert.Equal(t, 429, st, "the waiting poll")
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting poll was not answered")
	}
}
