package socketioproxy_test

// Attack session 15: park.Hold (5a1a55c, a17c389). A held connection
// that has waited park.SleepAfter is put to sleep: its socket is
// registered in the park epoll under a duplicate descriptor and the
// net.Conn closed; handed back, a new net.Conn is made on the socket
// (net.FileConn). Held: the keeper's kept connections (keep.go) and a
// waiting GET's two connections, the client's and the worker's
// (pollpark.go).
//
// The oracle for "asleep" is the edge's own descriptors, read from
// /proc: a sleeping socket is registered in the park epoll (one-shot
// registrations) under a descriptor the Go runtime's epoll (edge
// triggered) does not know.

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// atk15Pid is the pid of the process listening on addr (the edge).
func atk15Pid(t *testing.T, addr string) int {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	p, _ := strconv.Atoi(port)
	want := fmt.Sprintf("0100007F:%04X", p)
	var inode string
	for _, row := range atk15TCPRows(t) {
		if row[1] == want && row[3] == "0A" {
			inode = row[9]
		}
	}
	require.NotEmpty(t, inode, "no listener on %s", addr)
	link := "socket:[" + inode + "]"
	procs, err := os.ReadDir("/proc")
	require.NoError(t, err)
	for _, pe := range procs {
		pid, err := strconv.Atoi(pe.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); l == link {
				return pid
			}
		}
	}
	t.Fatalf("no process holds the listener on %s", addr)
	return 0
}

// atk15TCPRows are /proc/net/tcp's rows, split in fields.
func atk15TCPRows(t *testing.T) [][]string {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	require.NoError(t, err)
	var rows [][]string
	for i, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); i > 0 && len(f) >= 10 {
			rows = append(rows, f)
		}
	}
	return rows
}

// atk15Inodes maps the client ends of connections to the edge's ends'
// inodes (0 when the kernel no longer lists one), from one read of
// /proc/net/tcp.
func atk15Inodes(t *testing.T, clients ...net.Conn) []uint64 {
	t.Helper()
	byPair := map[[2]string]uint64{}
	for _, row := range atk15TCPRows(t) {
		n, _ := strconv.ParseUint(row[9], 10, 64)
		byPair[[2]string{row[1], row[2]}] = n
	}
	out := make([]uint64, len(clients))
	for i, c := range clients {
		la := c.LocalAddr().(*net.TCPAddr)
		ra := c.RemoteAddr().(*net.TCPAddr)
		out[i] = byPair[[2]string{fmt.Sprintf("0100007F:%04X", ra.Port), fmt.Sprintf("0100007F:%04X", la.Port)}]
	}
	return out
}

// atk15Epoll is one registration of an epoll instance (fdinfo).
type atk15Epoll struct {
	tfd    int
	events uint64
	ino    uint64
}

// atk15Sleeping is the set of the edge's sockets asleep (their inodes):
// registered in the park epoll, one-shot, under a descriptor the Go
// runtime's epoll (edge triggered) does not watch. The runtime's
// registrations are told apart by descriptor and inode: a descriptor
// number alone may have been reused for another socket.
func atk15Sleeping(t *testing.T, pid int) map[uint64]bool {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	require.NoError(t, err)
	runtime := map[[2]uint64]bool{}
	var park []atk15Epoll
	for _, fd := range fds {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); l != "anon_inode:[eventpoll]" {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd.Name()))
		if err != nil {
			continue
		}
		var regs []atk15Epoll
		et := false
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(l, "tfd:") {
				continue
			}
			f := strings.Fields(l)
			var r atk15Epoll
			for i := 0; i+1 < len(f); i++ {
				switch f[i] {
				case "tfd:":
					r.tfd, _ = strconv.Atoi(f[i+1])
				case "events:":
					r.events, _ = strconv.ParseUint(f[i+1], 16, 64)
				}
				if strings.HasPrefix(f[i], "ino:") {
					r.ino, _ = strconv.ParseUint(strings.TrimPrefix(f[i], "ino:"), 16, 64)
				}
			}
			if r.events&(1<<31) != 0 {
				et = true
			}
			regs = append(regs, r)
		}
		if et {
			for _, r := range regs {
				runtime[[2]uint64{uint64(r.tfd), r.ino}] = true
			}
		} else {
			park = append(park, regs...)
		}
	}
	out := map[uint64]bool{}
	for _, r := range park {
		if r.events&(1<<30) != 0 && !runtime[[2]uint64{uint64(r.tfd), r.ino}] {
			out[r.ino] = true
		}
	}
	return out
}

// atk15Fds counts the edge's open descriptors.
func atk15Fds(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	require.NoError(t, err)
	return len(fds)
}

// atk15Asleep waits until the edge's ends of conns are all asleep.
func atk15Asleep(t *testing.T, pid int, conns ...net.Conn) {
	t.Helper()
	var missing atomic.Int64
	ok := assert.Eventually(t, func() bool {
		asleep := atk15Sleeping(t, pid)
		m := 0
		for _, ino := range atk15Inodes(t, conns...) {
			if !asleep[ino] {
				m++
			}
		}
		missing.Store(int64(m))
		return m == 0
	}, 10*time.Second, 50*time.Millisecond)
	require.True(t, ok, "%d of %d connections not asleep 10 s after they were held (SleepAfter is 250 ms)", missing.Load(), len(conns))
}

// atk15Alive reports whether the edge still answers its admin endpoint.
func atk15Alive(e *testenv.Edge) bool {
	c, err := net.DialTimeout("tcp", e.AdminAddr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(c, "GET /config/ HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", e.AdminAddr)
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "HTTP/1.1 ")
}

// atk15Reset closes c with a reset (SO_LINGER 0).
func atk15Reset(c net.Conn) {
	_ = c.(*net.TCPConn).SetLinger(0)
	c.Close()
}

// A kept connection falls asleep; its client then sends a whole request
// of the shape h1serve reads (transport=polling and sid= in the query)
// and resets the connection at once. Woken, the socket is made a
// net.Conn again by net.FileConn, whose getpeername fails on a reset
// socket (ENOTCONN): the new connection's RemoteAddr is nil, and
// h1serve's conn.RemoteAddr().String() (h1serve.go, before the handler
// and outside its recover) panics: the whole edge exits. Two shapes: the
// POSTs' connection of a real session, and a stranger's connection that
// only made a handshake (no login, no session: any client can do it).
// Expected: the edge drops (or serves) the request and goes on serving
// everyone else. FAILS at a17c389 (critical: any client crashes the
// edge; panic at h1serve.go:175 from keeper.woken).
func TestAttack15RequestThenResetOnASleepingKeptConnection(t *testing.T) {
	// Each try is a race (the reset must land before the edge wakes the
	// socket: it usually does on loopback), so several connections are
	// tried, all asleep at once.
	const tries = 6
	t.Run("session POST connections", func(t *testing.T) {
		addr, edge, _ := startParkStack(t)
		pid := atk15Pid(t, addr)
		var sids []string
		var gets []*pollConn
		var posts []net.Conn
		for range tries + 1 {
			sid, g, p := openPolling(t, addr)
			sids, gets, posts = append(sids, sid), append(gets, g), append(posts, p.conn)
		}
		atk15Asleep(t, pid, posts...)
		for i := range tries {
			atk15RequestThenReset(posts[i], "POST /socket.io/?EIO=4&transport=polling&sid="+sids[i]+" HTTP/1.1\r\nHost: "+addr+
				"\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: 14\r\n\r\n42[\"echo\",\"x\"]")
		}
		atk15StillAlive(t, edge, "clients sent a request then reset their sleeping kept connections")
		// The last session goes on: its sleeping POST connection serves.
		res, body := (&pollConn{t: t, conn: posts[tries], br: bufio.NewReader(posts[tries]), host: addr}).
			do("POST", "&sid="+sids[tries], `421["echo","after"]`)
		require.Equal(t, 200, res.StatusCode, body)
		res, body, err := gets[tries].read(10 * time.Second)
		require.NoError(t, err)
		assert.Contains(t, body, `431[{"data":"after"`)
	})
	t.Run("strangers after a handshake", func(t *testing.T) {
		addr, edge, _ := startParkStack(t)
		pid := atk15Pid(t, addr)
		var conns []net.Conn
		for range 2 * tries {
			c := atk11Dial(t, addr)
			res, body, err := c.do("GET", atk11Path, nil, "")
			require.NoError(t, err)
			require.Equal(t, 200, res.StatusCode, body)
			conns = append(conns, c.c)
		}
		atk15Asleep(t, pid, conns...)
		for _, c := range conns {
			atk15RequestThenReset(c, "GET /?transport=polling&sid=x HTTP/1.1\r\nHost: "+addr+"\r\n\r\n")
		}
		atk15StillAlive(t, edge, "strangers made a handshake, waited 2 s, sent a GET and reset their connections")
	})
}

// atk15RequestThenReset writes req on c and resets c at once.
func atk15RequestThenReset(c net.Conn, req string) {
	_ = c.(*net.TCPConn).SetLinger(0)
	_, _ = c.Write([]byte(req))
	c.Close()
}

// atk15StillAlive fails the test when the edge stops answering within
// 2 s, or has logged a panic.
func atk15StillAlive(t *testing.T, edge *testenv.Edge, what string) {
	t.Helper()
	alive := true
	deadline := time.Now().Add(2 * time.Second)
	for alive && time.Now().Before(deadline) {
		alive = atk15Alive(edge)
		time.Sleep(50 * time.Millisecond)
	}
	out := edge.Output()
	if i := strings.Index(out, "panic"); i >= 0 {
		t.Errorf("the edge panicked: %s:\n%s", what, truncate(out[i:], 1200))
	}
	require.True(t, alive, "the edge died: %s", what)
}

// atk15Stack is a Flask worker (env added to its environment) behind an
// edge with socketio_proxy and the server's timeouts (a Caddyfile
// timeouts block's lines, or "").
type atk15Stack struct {
	addr   string
	edge   *testenv.Edge
	worker *testenv.FlaskWorker
	pid    int
	config func(extra string) string
}

func atk15Start(t *testing.T, env map[string]string, timeouts string) *atk15Stack {
	t.Helper()
	s := &atk15Stack{addr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}
	s.worker = testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1", SecretKey: advSecret, Env: env})
	global := ""
	if timeouts != "" {
		global = "\tservers {\n\t\ttimeouts {\n\t\t\t" + timeouts + "\n\t\t}\n\t}\n"
	}
	s.config = func(extra string) string {
		return fmt.Sprintf(`{
	admin {$EDGE_ADMIN}
	persist_config off
%[3]s}
http://%[1]s {
	bind 127.0.0.1
	socketio_proxy {
		to %[2]s
		%[4]s
	}
}
`, s.addr, s.worker.Addr, global, extra)
	}
	path := t.TempDir() + "/Caddyfile"
	require.NoError(t, writeFile(path, s.config("")))
	s.edge = testenv.StartEdgeFile(t, path, map[string]string{}, s.addr)
	s.pid = atk15Pid(t, s.addr)
	return s
}

// atk15Session is a polling session opened by openPolling: its GET
// waits at the worker on gets, posts is its kept POST connection.
type atk15Session struct {
	sid         string
	gets, posts *pollConn
}

func atk15Open(t *testing.T, addr string, n int) []atk15Session {
	t.Helper()
	out := make([]atk15Session, n)
	for i := range out {
		sid, g, p := openPolling(t, addr)
		out[i] = atk15Session{sid, g, p}
	}
	return out
}

// atk15Census counts the edge's descriptors: all of them, its clients'
// sockets (on its listening port, the listener aside), the rest of its
// TCP sockets (to the worker: its idle pool), and those asleep.
func atk15Census(t *testing.T, pid int, addr string) (total, clients, others, asleep int) {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	mine := fmt.Sprintf("0100007F:%04X", p)
	byIno := map[string][]string{}
	for _, row := range atk15TCPRows(t) {
		byIno[row[9]] = row
	}
	sleeping := atk15Sleeping(t, pid)
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	require.NoError(t, err)
	for _, fd := range fds {
		total++
		l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		ino, ok := strings.CutPrefix(l, "socket:[")
		if !ok {
			continue
		}
		ino = strings.TrimSuffix(ino, "]")
		if n, _ := strconv.ParseUint(ino, 10, 64); sleeping[n] {
			asleep++
		}
		row := byIno[ino]
		switch {
		case row == nil || row[3] == "0A":
		case row[1] == mine:
			clients++
		default:
			others++
		}
	}
	return total, clients, others, asleep
}

// atk15Settle waits until the edge holds no client socket and nothing
// asleep, and its descriptors (less its idle connections to the worker)
// and goroutines are back to (near) their baseline.
func atk15Settle(t *testing.T, e *testenv.Edge, addr string, pid, baseFD, baseG int, what string) {
	t.Helper()
	var total, clients, others, asleep, g int
	var dump string
	ok := assert.Eventually(t, func() bool {
		total, clients, others, asleep = atk15Census(t, pid, addr)
		g, dump = atk9GoroutineDump(t, e.AdminAddr)
		return clients == 0 && asleep == 0 && total-others <= baseFD+2 && g <= baseG+5
	}, 15*time.Second, 100*time.Millisecond)
	if !ok {
		t.Errorf("%s: %d client sockets, %d asleep, %d descriptors of which %d to the worker (baseline %d), %d goroutines (baseline %d)",
			what, clients, asleep, total, others, baseFD, g, baseG)
		t.Logf("goroutines:\n%s", truncate(dump, 6000))
	}
}

// atk15Await reads se's GET answers until one holds want (the GET sent
// already), answering pings and sending the next GET meanwhile.
func atk15Await(t *testing.T, se atk15Session, want, what string) {
	t.Helper()
	for range 4 {
		res, body, err := se.gets.read(10 * time.Second)
		require.NoError(t, err, what)
		require.Equal(t, 200, res.StatusCode, "%s: %s", what, body)
		if strings.Contains(body, want) {
			return
		}
		for _, pkt := range strings.Split(body, "\x1e") {
			if pkt == "2" {
				res, b := se.posts.do("POST", "&sid="+se.sid, "3")
				require.Equal(t, 200, res.StatusCode, "%s: pong: %s", what, b)
			} else if !strings.HasPrefix(pkt, "42") && !strings.HasPrefix(pkt, "43") && pkt != "6" {
				t.Errorf("%s: unexpected packet %q", what, pkt)
			}
		}
		se.gets.send("GET", "&sid="+se.sid, "")
	}
	t.Fatalf("%s: %q never came", what, want)
}

// Sessions whose GET waits at the worker sleep (the client's connection,
// the worker's, and the kept POST connection), opened in two waves so
// that the second wave's connections take the descriptor numbers the
// first wave's sleep frees, and strangers come and go meanwhile. Then
// every session is woken: half by a message from its own POST
// connection (the worker answers the GET with the echo's ack), half by
// the worker's ping (PING_INTERVAL 4 s), answered "3". Expected: every
// answer reaches its own client (its own payload, never another's),
// each POST connection serves again, and once every client leaves, the
// edge's descriptors and goroutines are back to their baseline (its
// idle connections to the worker aside). HOLDS at a17c389.
func TestAttack15SleepingSessionsWakeToTheirOwnAnswers(t *testing.T) {
	s := atk15Start(t, map[string]string{"PING_INTERVAL": "4", "PING_TIMEOUT": "20"}, "")
	warm := atk15Open(t, s.addr, 1)
	warm[0].gets.conn.Close()
	warm[0].posts.conn.Close()
	atk11Waiting(t, s.edge, 0)
	baseFD, _, others, _ := atk15Census(t, s.pid, s.addr)
	baseFD -= others
	baseG := atk9Goroutines(t, s.edge.AdminAddr)

	const n = 40
	sessions := atk15Open(t, s.addr, n/2)
	// The first wave falls asleep while the second opens.
	time.Sleep(1200 * time.Millisecond)
	stop := make(chan struct{})
	churned := make(chan int)
	go func() {
		k := 0
		defer func() { churned <- k }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := net.Dial("tcp", s.addr)
			if err != nil {
				continue
			}
			fmt.Fprintf(c, "GET /socket.io/?EIO=4&transport=polling&sid=nope HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", s.addr)
			_, _ = bufio.NewReader(c).ReadString('\n')
			c.Close()
			k++
		}
	}()
	stopChurn := sync.OnceFunc(func() {
		close(stop)
		t.Logf("%d strangers' connections came and went", <-churned)
	})
	t.Cleanup(stopChurn)
	sessions = append(sessions, atk15Open(t, s.addr, n/2)...)
	time.Sleep(1200 * time.Millisecond) // the second wave falls asleep among strangers
	stopChurn()
	var all []net.Conn
	for _, se := range sessions {
		all = append(all, se.gets.conn, se.posts.conn)
	}
	atk15Asleep(t, s.pid, all...)
	asleep := len(atk15Sleeping(t, s.pid))
	assert.GreaterOrEqual(t, asleep, 3*n, "the clients' connections and the workers' asleep")

	for i, se := range sessions {
		if i%2 == 1 {
			continue
		}
		payload := fmt.Sprintf("p%d-%s", i, se.sid)
		res, body := se.posts.do("POST", "&sid="+se.sid, `421["echo","`+payload+`"]`)
		require.Equal(t, 200, res.StatusCode, "session %d's POST on its sleeping kept connection: %s", i, body)
		res, body, err := se.gets.read(10 * time.Second)
		require.NoError(t, err, "session %d's sleeping GET", i)
		require.Equal(t, 200, res.StatusCode, body)
		assert.Contains(t, body, `431[{"data":"`+payload+`"`, "session %d got another's answer", i)
	}
	for i, se := range sessions {
		if i%2 == 0 {
			continue
		}
		res, body, err := se.gets.read(10 * time.Second)
		require.NoError(t, err, "session %d's sleeping GET, waiting for its ping", i)
		require.Equal(t, 200, res.StatusCode, body)
		assert.Equal(t, "2", body, "session %d's ping", i)
		res, body = se.posts.do("POST", "&sid="+se.sid, "3")
		require.Equal(t, 200, res.StatusCode, "session %d's pong on its sleeping kept connection: %s", i, body)
	}
	// Every session still lives: one more echo each, awake this time.
	for i, se := range sessions {
		se.gets.send("GET", "&sid="+se.sid, "")
		payload := fmt.Sprintf("q%d", i)
		res, body := se.posts.do("POST", "&sid="+se.sid, `422["echo","`+payload+`"]`)
		require.Equal(t, 200, res.StatusCode, body)
		atk15Await(t, se, `432[{"data":"`+payload+`"`, fmt.Sprintf("session %d after its wake-up", i))
	}
	for _, se := range sessions {
		se.gets.conn.Close()
		se.posts.conn.Close()
	}
	atk11Waiting(t, s.edge, 0)
	atk15Settle(t, s.edge, s.addr, s.pid, baseFD, baseG, "after 40 sessions slept, woke and left")
}

// Clients leave while their GETs sleep at the worker (the client's
// connection, the worker's and the kept POST connection all asleep): a
// third close (FIN), a third reset (RST), a third half-close (shutdown
// write). Expected: each GET ends at once (nothing left in flight), the
// worker's connections of the abandoned GETs are closed, not kept (no
// socket to the worker asleep is left behind), each session's next GET
// on a new connection is accepted, and once every client
// leaves the edge is back to its baseline.
// HOLDS at a17c389.
func TestAttack15ClientsLeaveWhileTheirGetsSleep(t *testing.T) {
	s := atk15Start(t, nil, "")
	warm := atk15Open(t, s.addr, 1)
	warm[0].gets.conn.Close()
	warm[0].posts.conn.Close()
	atk11Waiting(t, s.edge, 0)
	baseFD, _, others, _ := atk15Census(t, s.pid, s.addr)
	baseFD -= others
	baseG := atk9Goroutines(t, s.edge.AdminAddr)

	const n = 12
	sessions := atk15Open(t, s.addr, n)
	var all []net.Conn
	for _, se := range sessions {
		all = append(all, se.gets.conn, se.posts.conn)
	}
	atk15Asleep(t, s.pid, all...)
	_, _, _, asleep := atk15Census(t, s.pid, s.addr)
	require.GreaterOrEqual(t, asleep, 3*n, "the GETs' worker connections asleep too")
	for i, se := range sessions {
		switch i % 3 {
		case 0:
			se.gets.conn.Close()
		case 1:
			atk15Reset(se.gets.conn)
		case 2:
			require.NoError(t, se.gets.conn.(*net.TCPConn).CloseWrite())
		}
	}
	atk11Waiting(t, s.edge, 0)
	// Left asleep: the POST connections only.
	var rest int
	require.Eventually(t, func() bool {
		_, _, _, rest = atk15Census(t, s.pid, s.addr)
		return rest == n
	}, 5*time.Second, 20*time.Millisecond, "sockets asleep once the GETs' clients left: want the %d POST connections", n)
	for i, se := range sessions {
		if i%3 == 2 {
			// The half-closed client reads what the edge says last.
			got, closed := (&atk11Conn{t: t, c: se.gets.conn, br: se.gets.br}).readAll(2 * time.Second)
			assert.True(t, closed, "session %d: a half-closed client's connection left open (read %q)", i, got)
			se.gets.conn.Close()
		}
		// The next GET is accepted: it waits at the worker, where one
		// refused is answered 400 at once. (Its echo is not awaited:
		// python-engineio hands the next packet to the abandoned GET
		// still waiting at the worker, which loses it, asleep or not.)
		fresh := dialPoll(t, s.addr)
		fresh.send("GET", "&sid="+se.sid, "")
		atk11Waiting(t, s.edge, 1)
		_ = fresh.conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := fresh.br.Peek(1); err == nil {
			res, body, _ := fresh.read(time.Second)
			if res != nil {
				t.Errorf("session %d's GET after its client left was answered at once: %d %s", i, res.StatusCode, body)
			}
		}
		fresh.conn.Close()
		se.posts.conn.Close()
		atk11Waiting(t, s.edge, 0)
	}
	atk15Settle(t, s.edge, s.addr, s.pid, baseFD, baseG, "after the clients of sleeping GETs left")
}

// A kept POST connection asleep is closed by the keeper's idle sweep
// once idle past the server's idle timeout (3 s here), with a FIN (no
// reset, no answer), and its socket is gone from the edge; a sleeping
// GET (not idle: it waits for its answer) is not closed by it.
// HOLDS at a17c389.
func TestAttack15IdleTimeoutClosesASleepingKeptConnection(t *testing.T) {
	s := atk15Start(t, nil, "idle 3s")
	se := atk15Open(t, s.addr, 1)[0]
	start := time.Now()
	atk15Asleep(t, s.pid, se.posts.conn, se.gets.conn)
	got, closed := (&atk11Conn{t: t, c: se.posts.conn, br: se.posts.br}).readAll(8 * time.Second)
	took := time.Since(start)
	assert.True(t, closed, "a sleeping kept connection still open %v after its answer (idle 3s)", took)
	assert.Empty(t, got, "the edge wrote on closing an idle kept connection")
	assert.Greater(t, took, 2500*time.Millisecond, "closed before its idle timeout")
	_, err := se.posts.conn.Read(make([]byte, 1))
	assert.NotContains(t, fmt.Sprint(err), "reset", "closed with a reset")
	require.Eventually(t, func() bool {
		_, clients, _, _ := atk15Census(t, s.pid, s.addr)
		return clients == 1
	}, 5*time.Second, 20*time.Millisecond, "the edge's end of the idle connection is gone; the GET's stays")
	// The GET, asleep past the idle timeout, is answered.
	fresh := dialPoll(t, s.addr)
	res, body := fresh.do("POST", "&sid="+se.sid, `421["echo","late"]`)
	require.Equal(t, 200, res.StatusCode, body)
	atk15Await(t, atk15Session{se.sid, se.gets, fresh}, `431[{"data":"late"`, "the sleeping GET past the idle timeout")
}

// A reload, then the edge's exit (SIGTERM), with sessions asleep (their
// GETs waiting at the worker, their kept POST connections): the reload
// closes the sleeping kept connections with a FIN; the sleeping GETs go
// on and their answers say Connection: close; nothing leaks. On exit,
// the sleeping GETs of the new config are answered (or closed), never
// reset, and the edge exits promptly.
// HOLDS at a17c389.
func TestAttack15ReloadAndExitWithSleepingConnections(t *testing.T) {
	s := atk15Start(t, nil, "")
	warm := atk15Open(t, s.addr, 1)
	warm[0].gets.conn.Close()
	warm[0].posts.conn.Close()
	atk11Waiting(t, s.edge, 0)
	baseFD, _, others, _ := atk15Census(t, s.pid, s.addr)
	baseFD -= others
	baseG := atk9Goroutines(t, s.edge.AdminAddr)

	const n = 8
	sessions := atk15Open(t, s.addr, n)
	var all []net.Conn
	for _, se := range sessions {
		all = append(all, se.gets.conn, se.posts.conn)
	}
	atk15Asleep(t, s.pid, all...)
	atk10Reload(t, s.edge, testenv.EdgeConfig(strings.Replace(s.config("max_payload 2MB"), "admin {$EDGE_ADMIN}", "admin "+s.edge.AdminAddr, 1)))
	for i, se := range sessions {
		got, closed := (&atk11Conn{t: t, c: se.posts.conn, br: se.posts.br}).readAll(5 * time.Second)
		assert.True(t, closed, "session %d: the sleeping kept connection open after the reload", i)
		assert.Empty(t, got, "session %d", i)
		se.posts.conn.Close()
	}
	for i, se := range sessions {
		fresh := dialPoll(t, s.addr)
		payload := fmt.Sprintf("r%d", i)
		res, body := fresh.do("POST", "&sid="+se.sid, `421["echo","`+payload+`"]`)
		require.Equal(t, 200, res.StatusCode, body)
		res, body, err := se.gets.read(10 * time.Second)
		require.NoError(t, err, "session %d's sleeping GET after the reload", i)
		assert.Contains(t, body, `431[{"data":"`+payload+`"`, "session %d", i)
		got, closed := (&atk11Conn{t: t, c: se.gets.conn, br: se.gets.br}).readAll(time.Second)
		assert.Empty(t, got, "session %d", i)
		assert.True(t, !closed || res.Close, "session %d: the GET connection closed after an answer that did not say Connection: close", i)
		se.gets.conn.Close()
		// The session goes on under the new config: its GET sleeps.
		sessions[i] = atk15Session{se.sid, dialPoll(t, s.addr), fresh}
		sessions[i].gets.send("GET", "&sid="+se.sid, "")
	}
	atk11Waiting(t, s.edge, n)
	all = all[:0]
	for _, se := range sessions {
		all = append(all, se.gets.conn, se.posts.conn)
	}
	atk15Asleep(t, s.pid, all...)
	// Nothing of the old config's connections is left: the sessions'
	// two connections and their GETs' worker connections, all asleep.
	var total, clients, asleep int
	assert.Eventually(t, func() bool {
		total, clients, others, asleep = atk15Census(t, s.pid, s.addr)
		return clients == 2*n && asleep == 3*n && total-others <= baseFD+2*n+2
	}, 10*time.Second, 50*time.Millisecond, "after the reload")
	t.Logf("after the reload: %d descriptors (%d to the worker, baseline %d less them), %d client sockets, %d asleep; %d goroutines (baseline %d)",
		total, others, baseFD, clients, asleep, atk9Goroutines(t, s.edge.AdminAddr), baseG)

	took := s.edge.Stop(t)
	assert.Less(t, took, 15*time.Second, "the edge's exit with sleeping connections")
	for i, se := range sessions {
		for name, c := range map[string]*pollConn{"GET": se.gets, "POST": se.posts} {
			_ = c.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
			b, err := io.ReadAll(c.br)
			assert.NotContains(t, fmt.Sprint(err), "reset", "session %d's %s connection reset on exit (read %q)", i, name, b)
			var ne net.Error
			assert.False(t, errors.As(err, &ne) && ne.Timeout(), "session %d's %s connection open after the exit", i, name)
			if len(b) > 0 {
				assert.Contains(t, string(b), "Connection: close", "session %d's %s: what the exit wrote: %q", i, name, b)
			}
		}
	}
}

// The edge out of descriptors (RLIMIT_NOFILE 64, set by a wrapper
// script) when sleeping connections wake: a kept POST connection whose
// client sends, and a sleeping GET whose worker answers (an echo POSTed
// on a connection the edge had accepted before). Waking needs a
// descriptor (net.FileConn dups the socket), so both fail. Expected: no
// panic, no hang: each client gets a close; the failure is the edge's
// own, not the worker's: the worker stays in rotation, and the edge logs
// why. The GET's session ends with the Engine.IO error its client
// library understands ("Session ID unknown": it opens another), since
// the worker's answer was lost with the connection that could not be
// woken; once descriptors are free again the edge serves new sessions
// and the surviving ones at once. FAILED at a17c389: the GET's worker
// connection, which failed to wake (failedConn), is taken for the
// worker failing ("Socket.IO worker unreachable; out of rotation",
// error "fcntl: too many open files"): the only worker is out of
// rotation for 10 s, the GET's client is told "Session ID unknown" (its
// session ended), and every handshake is refused "No Socket.IO worker
// is available" after descriptors are free again. (The POST's client
// gets a reset, its request unread, and nothing is logged of it.)
func TestAttack15OutOfDescriptorsWhileWaking(t *testing.T) {
	const limit = 64
	bin := os.Getenv("EDGE_CADDY")
	if bin == "" {
		bin = testenv.CaddyBinary(t)
	}
	wrapper := t.TempDir() + "/caddy"
	require.NoError(t, os.WriteFile(wrapper, []byte(fmt.Sprintf("#!/bin/sh\nulimit -n %d\nexec %s \"$@\"\n", limit, bin)), 0o755))
	t.Setenv("EDGE_CADDY", wrapper)
	s := atk15Start(t, nil, "")
	lim, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", s.pid))
	require.NoError(t, err)
	require.Regexp(t, fmt.Sprintf(`Max open files\s+%d\s+%d`, limit, limit), string(lim))

	sessions := atk15Open(t, s.addr, 3)
	var all []net.Conn
	for _, se := range sessions {
		all = append(all, se.gets.conn, se.posts.conn)
	}
	atk15Asleep(t, s.pid, all...)
	// A connection the edge has accepted, awake (it has sent nothing).
	awake := dialPoll(t, s.addr)
	// Fill the edge's descriptors with connections it accepts and
	// keeps (each sends half a request head). (Counted below the limit:
	// the edge may hold a descriptor above it, inherited.)
	below := func() int {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.pid))
		require.NoError(t, err)
		n := 0
		for _, e := range ents {
			if fd, _ := strconv.Atoi(e.Name()); fd < limit {
				n++
			}
		}
		return n
	}
	var fill []net.Conn
	defer func() {
		for _, c := range fill {
			c.Close()
		}
	}()
	for len(fill) < 2*limit && below() < limit {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		require.NoError(t, err)
		_, _ = c.Write([]byte("GET /socket.io/?EIO=4&transport=pol"))
		fill = append(fill, c)
		before := below()
		for range 20 {
			if below() > before {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	require.Equal(t, limit, below(), "the edge's descriptors filled")
	require.True(t, atk15Sleeping(t, s.pid)[atk15Inodes(t, sessions[0].posts.conn)[0]], "session 0's POST connection asleep")
	var ne net.Error
	// Session 0's kept POST connection wakes on its client's POST.
	sessions[0].posts.send("POST", "&sid="+sessions[0].sid, `421["echo","full"]`)
	res, body, err := sessions[0].posts.read(5 * time.Second)
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "a kept connection woken without a descriptor to spare: no answer, no close within 5 s")
	t.Logf("session 0's POST on its sleeping kept connection, descriptors full: answered %v %q, %v", res != nil, body, err)
	// Session 1's sleeping GET wakes on the worker's answer to an echo.
	res, body = awake.do("POST", "&sid="+sessions[1].sid, `421["echo","full"]`)
	require.Equal(t, 200, res.StatusCode, body)
	res, body, err = sessions[1].gets.read(5 * time.Second)
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "a sleeping GET woken without a descriptor to spare: no answer, no close within 5 s")
	t.Logf("session 1's sleeping GET, answered by the worker, descriptors full: answered %v %q, %v", res != nil, body, err)
	assert.Contains(t, body, "Session ID unknown", "session 1, whose worker's answer was lost, ends as Engine.IO clients understand")

	for _, c := range fill {
		c.Close()
	}
	fill = nil
	require.Eventually(t, func() bool { return below() < limit-10 }, 10*time.Second, 20*time.Millisecond)
	atk15StillAlive(t, s.edge, "woken out of descriptors")
	if l := atk15LogLines(s.edge.Output(), "out of rotation"); l != "" {
		t.Errorf("the worker was put out of rotation for the edge's own failure to wake a connection: %s", truncate(l, 600))
	}
	// Session 2, asleep all along, goes on; so does a new session.
	res, body = awake.do("POST", "&sid="+sessions[2].sid, `421["echo","after"]`)
	require.Equal(t, 200, res.StatusCode, body)
	atk15Await(t, sessions[2], `431[{"data":"after"`, "session 2 once descriptors are free")
	fresh := atk15Open(t, s.addr, 1)[0]
	res, body = fresh.posts.do("POST", "&sid="+fresh.sid, `421["echo","fresh"]`)
	require.Equal(t, 200, res.StatusCode, body)
	atk15Await(t, fresh, `431[{"data":"fresh"`, "a new session once descriptors are free")
	logged := atk15LogLines(s.edge.Output(), "too many open files")
	assert.Contains(t, logged, "a kept connection could not be woken", "the operator is told why the POST's connection closed")
	assert.Contains(t, logged, "the worker's connection of a waiting GET could not be woken", "the operator is told why the session ended")
}

// atk15LogLines are the lines of out that hold any of words.
func atk15LogLines(out string, words ...string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		for _, w := range words {
			if strings.Contains(strings.ToLower(l), w) {
				keep = append(keep, l)
				break
			}
		}
	}
	return strings.Join(keep, "\n")
}

// A TLS client's kept connection and its waiting GET are never put to
// sleep (Hold only puts plain TCP connections to sleep; the keeper does
// not park TLS ones at all): 2.5 s after they wait, neither socket is
// asleep, and both serve on.
// HOLDS at a17c389.
func TestAttack15TLSConnectionsNeverSleep(t *testing.T) {
	s, dial := atk11TLSStack(t, "")
	pid := atk15Pid(t, s.addr)
	g, p := dial(), dial()
	res, body, err := g.do("GET", atk11Path, nil, "")
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode, body)
	sid := sidPattern.FindStringSubmatch(body)[1]
	res, body, err = p.do("POST", atk11Path+"&sid="+sid, nil, "40")
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode, body)
	res, body, err = g.do("GET", atk11Path+"&sid="+sid, nil, "")
	require.NoError(t, err)
	require.Contains(t, body, "40{")
	require.NoError(t, g.raw(atk11Request(s.addr, "GET", atk11Path+"&sid="+sid, nil, "")))
	atk11Waiting(t, s.edge, 1)
	time.Sleep(2500 * time.Millisecond) // past SleepAfter and a sweep
	raw := func(c *atk11Conn) net.Conn { return c.c.(*tls.Conn).NetConn() }
	asleep := atk15Sleeping(t, pid)
	for i, ino := range atk15Inodes(t, raw(g), raw(p)) {
		require.NotZero(t, ino)
		assert.False(t, asleep[ino], "TLS connection %d asleep", i)
	}
	res, body, err = p.do("POST", atk11Path+"&sid="+sid, nil, `421["echo","tls"]`)
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode, body)
	res, body, err = g.read("GET", 10*time.Second)
	require.NoError(t, err)
	assert.Contains(t, body, `431[{"data":"tls"`)
}
