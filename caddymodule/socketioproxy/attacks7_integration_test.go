package socketioproxy_test

// Attacks on two changes: polling through internal/h1client, and the
// lingering WebSocket close (internal/relay/linger.go). A test here fails
// while its hole is open.

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// atk7Recover is the recover line the suite runs with: EDGE_TEST_RECOVER's
// window when set, else def (which may be empty: no recovery).
func atk7Recover(def string) string {
	if w := os.Getenv("EDGE_TEST_RECOVER"); w != "" {
		return "recover " + w
	}
	return def
}

// atk7Modes are the recover lines a test runs each of its cases with:
// none and 30 s, or EDGE_TEST_RECOVER's window alone when it is set.
func atk7Modes() []string {
	if w := os.Getenv("EDGE_TEST_RECOVER"); w != "" {
		return []string{"recover " + w}
	}
	return []string{"", "recover 30s"}
}

// atk7WS is a raw Socket.IO client on a WebSocket.
type atk7WS struct {
	t      *testing.T
	c      *websocket.Conn
	answer bool // answer the edge's pings
}

func atk7Dial(t *testing.T, edge string) *atk7WS {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws://"+edge+"/socket.io/?EIO=4&transport=websocket", nil)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	// Keep the edge's close frame to ourselves: gorilla would answer it,
	// and the attack is a client that goes on sending instead.
	c.SetCloseHandler(func(int, string) error { return nil })
	w := &atk7WS{t: t, c: c, answer: true}
	_, open, err := w.read(5 * time.Second)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(open, "0{"), open)
	w.send("40")
	w.until(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "40{") })
	return w
}

func (w *atk7WS) send(msg string) error {
	_ = w.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return w.c.WriteMessage(websocket.TextMessage, []byte(msg))
}

// read reads one message, answering pings on the way when w.answer.
func (w *atk7WS) read(d time.Duration) (int, string, error) {
	_ = w.c.SetReadDeadline(time.Now().Add(d))
	for {
		mt, msg, err := w.c.ReadMessage()
		if err != nil {
			return 0, "", err
		}
		if string(msg) == "2" && w.answer {
			_ = w.send("3")
			continue
		}
		return mt, string(msg), nil
	}
}

// until reads until ok says a message is the one, within d.
func (w *atk7WS) until(d time.Duration, ok func(string) bool) string {
	w.t.Helper()
	end := time.Now().Add(d)
	for {
		_, m, err := w.read(time.Until(end))
		require.NoError(w.t, err, "waiting for a message")
		if ok(m) {
			return m
		}
	}
}

// untilClose reads until the edge's close frame and returns its code.
func (w *atk7WS) untilClose(d time.Duration) int {
	w.t.Helper()
	end := time.Now().Add(d)
	for {
		_, _, err := w.read(time.Until(end))
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		require.True(w.t, errors.As(err, &ce), "want the edge's close frame, got %v", err)
		return ce.Code
	}
}

// Once the edge has sent its close frame, nothing the client sends on that
// WebSocket reaches the worker: the close ends the client's say in the
// session. An observer in the same room sees every broadcast the worker
// makes; the client, after reading the edge's close frame (ping timeout,
// or its own Engine.IO close packet), asks the worker to broadcast.
//
// On a bridged session (recover on) whose namespace is recoverable the
// edge holds the worker's session when the client goes away, and since
// the lingering close (HalfClose instead of Close in clientSocket.close)
// readClient keeps reading the closed WebSocket for controlWait and hands
// each message to the held session: the worker runs them.
func TestAdversarialNothingSentAfterTheEdgesCloseReachesTheWorker(t *testing.T) {
	worker := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1",
		Env: map[string]string{"PING_INTERVAL": "1", "PING_TIMEOUT": "1"}})
	for _, mode := range atk7Modes() {
		edge := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	socketio_proxy %[2]s {
		%[3]s
	}
}
`, edge, worker.Addr, mode)), edge)
		for _, how := range []string{"ping timeout", "engine.io close"} {
			t.Run(fmt.Sprintf("%q/%s", mode, how), func(t *testing.T) {
				room := fmt.Sprintf("atk7-%d", time.Now().UnixNano())
				obs := atk7Dial(t, edge)
				obs.send(`420["join","` + room + `"]`)
				obs.until(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "430") })
				a := atk7Dial(t, edge)
				a.send(`421["join","` + room + `"]`)
				a.until(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "431") })
				// The path works: a broadcast before the close arrives.
				a.send(`42["broadcast",{"room":"` + room + `","data":"before"}]`)
				obs.until(5*time.Second, func(m string) bool { return strings.Contains(m, `"before"`) })

				if how == "ping timeout" {
					a.answer = false
				} else {
					a.send("1")
				}
				code := a.untilClose(10 * time.Second)
				t.Logf("the edge closed with %d", code)
				sent := 0
				for i := range 5 {
					if a.send(fmt.Sprintf(`42["broadcast",{"room":"%s","data":"after-close-%d"}]`, room, i)) == nil {
						sent++
					}
				}
				require.NotZero(t, sent, "the edge still takes bytes after its close")
				// The observer watches for 3 s, answering pings.
				end := time.Now().Add(3 * time.Second)
				var leaked []string
				for time.Now().Before(end) {
					_, m, err := obs.read(time.Until(end))
					if err != nil {
						break
					}
					if strings.Contains(m, "after-close") {
						leaked = append(leaked, m)
					}
				}
				require.Empty(t, leaked, "messages the client sent after the edge's close frame (%d) reached the worker", code)
			})
		}
	}
}

// atk7Fake is a fake Engine.IO worker speaking HTTP/1.1 by hand, so that
// a test controls every byte of its answers. Handshake n (from 1) opens
// session "S<n>"; a GET of session sid is answered with a message packet
// "4own-<sid>" padded to pad bytes, followed, in the same write, by
// after(sid) when set (what a faulty worker sends past its answer).
type atk7Fake struct {
	addr  string
	pad   int
	after func(sid string) []byte
	opens atomic.Int32
	gets  sync.Map // sid -> *atomic.Int32
	// posts counts the POSTs read; dropPost, when set, is asked after
	// each: true closes the connection without an answer.
	posts    atomic.Int32
	dropPost func(n int32) bool
}

func startAtk7Fake(t *testing.T, tlsCfg *tls.Config, pad int, after func(string) []byte) *atk7Fake {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	f := &atk7Fake{addr: ln.Addr().String(), pad: pad, after: after}
	var wg sync.WaitGroup
	var conns sync.Map
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, nil)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				f.serve(c)
			}()
		}
	}()
	return f
}

func (f *atk7Fake) serve(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		sid := req.URL.Query().Get("sid")
		var body string
		var after []byte
		switch {
		case sid == "":
			n := f.opens.Add(1)
			body = fmt.Sprintf(`0{"sid":"S%d","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`, n)
		case req.Method == http.MethodGet:
			v, _ := f.gets.LoadOrStore(sid, new(atomic.Int32))
			v.(*atomic.Int32).Add(1)
			body = "4own-" + sid + "-"
			if len(body) < f.pad {
				body += strings.Repeat("x", f.pad-len(body))
			}
			if f.after != nil {
				after = f.after(sid)
			}
		default:
			if n := f.posts.Add(1); f.dropPost != nil && f.dropPost(n) {
				return
			}
			body = "ok"
		}
		out := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		if _, err := c.Write(append([]byte(out), after...)); err != nil {
			return
		}
	}
}

// atk7Poll sends one polling request through the edge.
func atk7Poll(t *testing.T, edge, method, sid, body string) (int, string) {
	t.Helper()
	target := "http://" + edge + "/socket.io/?EIO=4&transport=polling"
	if sid != "" {
		target += "&sid=" + sid
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, target, rd)
	require.NoError(t, err)
	res, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(b)
}

// A worker that sends bytes past the end of its answer (a body longer
// than its Content-Length, or a second answer) must never have those bytes
// read as the answer to the next request on that connection, which may be
// another session's: h1client keeps a connection only when nothing
// follows the response (its bufio.Reader holds nothing, and MSG_PEEK finds
// the socket empty at reuse). Over TLS both checks look in the wrong
// place: a record holding the answer and what follows it is decrypted
// whole into the tls.Conn, the body of a large answer is read past
// bufio straight from the tls.Conn up to its Content-Length, and the rest
// stays in the tls.Conn's own buffer, which neither Buffered() nor a peek
// at the TCP socket sees. The next session's poll then gets it.
//
// Here session S1's poll is answered with 10 000 bytes followed by a
// forged answer "4LEAK-from-S1"; session S2 polls next, on the kept
// connection, and must get its own answer ("4own-S2-…").
//
// The edge runs without recover whatever EDGE_TEST_RECOVER says: with it,
// polling sessions are bridged over a WebSocket to the worker and never
// cross h1client, which this fake worker (HTTP only) cannot serve.
func TestAdversarialBytesPastAWorkersAnswerNeverAnswerAnotherSession(t *testing.T) {
	forged := func(sid string) []byte {
		if sid != "S1" {
			return nil
		}
		b := "4LEAK-from-S1"
		return []byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Length: %d\r\n\r\n%s", len(b), b))
	}
	ca := testenv.NewTestCA(t, "atk7 workers CA")
	files := ca.Issue(t, "fake-worker")
	cert, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		tls  *tls.Config
	}{
		{"plain", nil},
		// One record up to 16 KiB, as any TLS stack may send.
		{"tls", &tls.Config{Certificates: []tls.Certificate{cert}, DynamicRecordSizingDisabled: true, MinVersion: tls.VersionTLS12}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := startAtk7Fake(t, tc.tls, 10000, forged)
			transport := ""
			if tc.tls != nil {
				transport = "transport http {\n\t\t\ttls_trust_pool file " + ca.CertFile + "\n\t\t}"
			}
			edge := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
			testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	socketio_proxy {
		to %[2]s
		%[3]s
	}
}
`, edge, fake.addr, transport)), edge)
			var sids []string
			for i := range 2 {
				status, open := atk7Poll(t, edge, "GET", "", "")
				require.Equal(t, 200, status, "handshake %d: %s", i, open)
				m := sidPattern.FindStringSubmatch(open)
				require.NotNil(t, m, open)
				sids = append(sids, m[1])
			}
			status, body := atk7Poll(t, edge, "GET", sids[0], "")
			require.Equal(t, 200, status, body)
			require.Contains(t, body, "own-S1-")
			status, body = atk7Poll(t, edge, "GET", sids[1], "")
			require.Equal(t, 200, status, body)
			require.NotContains(t, body, "LEAK", "session S2's poll got bytes the worker sent after S1's answer")
			require.Contains(t, body, "own-S2-")
		})
	}
}

// Many polling sessions through one edge to one real worker, sharing the
// edge's kept connections, while their clients abandon long-polls at
// random moments (the edge's GET to the worker is cancelled mid-wait, or
// as the answer arrives): every answer a session gets holds its own
// packets only. Each session emits echoes tagged with its own name and
// reads the acks; a tag of another session in an answer is a response
// read on the wrong request.
func TestAdversarialAbandonedLongPollsNeverAnswerAnotherSession(t *testing.T) {
	edge := atk7PollingEdge(t)
	const sessions = 12
	deadline := time.Now().Add(12 * time.Second)
	var (
		mu     sync.Mutex
		leaks  []string
		acks   atomic.Int64
		cuts   atomic.Int64
		reopen atomic.Int64
	)
	var wg sync.WaitGroup
	for s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			me := fmt.Sprintf("sess%02d", s)
			p := newAtk7Poller(edge)
			defer p.client.CloseIdleConnections()
			rng := rand.New(rand.NewPCG(uint64(s), 7))
			for k := 0; time.Now().Before(deadline); {
				sid := p.open()
				if sid == "" {
					continue
				}
				reopen.Add(1)
				for time.Now().Before(deadline) {
					k++
					if st, _, err := p.do(context.Background(), "POST", sid, fmt.Sprintf(`42%d["echo","tag-%s"]`, k, me), false); err != nil || st != 200 {
						break
					}
					// A GET abandoned after 0 to 30 ms, or one read whole.
					ctx, cancel := context.WithCancel(context.Background())
					if rng.IntN(2) == 0 {
						time.AfterFunc(time.Duration(rng.IntN(30))*time.Millisecond, cancel)
					}
					st, body, err := p.do(ctx, "GET", sid, "", false)
					cancel()
					if err != nil {
						cuts.Add(1)
						continue
					}
					if foreignTag(body, me) {
						mu.Lock()
						leaks = append(leaks, fmt.Sprintf("%s got %q", me, body))
						mu.Unlock()
					} else {
						acks.Add(int64(strings.Count(body, "tag-"+me)))
					}
					if atk7Ended(st, body) {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d acks read, %d polls abandoned, %d sessions opened", acks.Load(), cuts.Load(), reopen.Load())
	require.Empty(t, leaks, "a session's poll answered with another session's packets")
	require.NotZero(t, acks.Load())
	require.NotZero(t, cuts.Load())
}

// atk7PollingEdge starts a real worker and an edge in front of it, and
// returns the edge's address.
func atk7PollingEdge(t *testing.T) string {
	t.Helper()
	worker := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1"})
	edge := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	socketio_proxy %[2]s {
		%[3]s
	}
}
`, edge, worker.Addr, atk7Recover(""))), edge)
	return edge
}

// atk7Poller is one polling client of the edge, keeping its HTTP
// connections alive as a browser does.
type atk7Poller struct {
	edge   string
	client *http.Client
}

func newAtk7Poller(edge string) *atk7Poller {
	return &atk7Poller{edge: edge, client: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
}

// do sends one polling request of session sid ("" for a handshake), with
// Expect: 100-continue when expect is set.
func (p *atk7Poller) do(ctx context.Context, method, sid, body string, expect bool) (int, string, error) {
	target := "http://" + p.edge + "/socket.io/?EIO=4&transport=polling"
	if sid != "" {
		target += "&sid=" + sid
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequestWithContext(ctx, method, target, rd)
	if expect {
		req.Header.Set("Expect", "100-continue")
	}
	res, err := p.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), err
}

// open opens a session connected to the default namespace and returns
// its sid, or "" when that failed.
func (p *atk7Poller) open() string {
	status, open, err := p.do(context.Background(), "GET", "", "", false)
	if err != nil || status != 200 {
		return ""
	}
	m := sidPattern.FindStringSubmatch(open)
	if m == nil {
		return ""
	}
	if st, _, err := p.do(context.Background(), "POST", m[1], "40", false); err != nil || st != 200 {
		return ""
	}
	return m[1]
}

// atk7Ended reports whether a poll's answer ends its session.
func atk7Ended(status int, body string) bool {
	return status != 200 || strings.HasPrefix(body, "1") || strings.Contains(body, "\x1e1")
}

// foreignTag reports whether body holds another session's tag than me's.
func foreignTag(body, me string) bool {
	for _, tag := range tagPattern.FindAllString(body, -1) {
		if tag != "tag-"+me {
			return true
		}
	}
	return false
}

var tagPattern = regexp.MustCompile(`tag-sess\d\d`)

// A client's POST that carries Expect: 100-continue reaches the worker
// with the header (it is no hop-by-hop header), and the worker (eventlet)
// answers "HTTP/1.1 100 Continue" before its final answer. The edge must
// read that final answer as the POST's: if it takes the 100 as the answer
// and keeps the connection, the POST's real answer ("ok") waits on it and
// is read as the answer to whatever request goes out on it next, another
// session's poll, whose own answer then goes to the request after: a
// session's packets read by another. Sessions here emit echoes tagged
// with their name, one of them with Expect on every POST, and check every
// answer holds their own tags only and that no poll is answered "ok".
func TestAdversarialExpectContinueNeverShiftsAnswersBetweenSessions(t *testing.T) {
	edge := atk7PollingEdge(t)
	const sessions = 8
	deadline := time.Now().Add(8 * time.Second)
	var (
		mu      sync.Mutex
		wrong   []string
		acks    atomic.Int64
		expects atomic.Int64
	)
	note := func(s string) {
		mu.Lock()
		if len(wrong) < 10 {
			wrong = append(wrong, s)
		}
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			me := fmt.Sprintf("sess%02d", s)
			attacker := s%2 == 0
			p := newAtk7Poller(edge)
			defer p.client.CloseIdleConnections()
			ctx := context.Background()
			for k := 0; time.Now().Before(deadline); {
				sid := p.open()
				if sid == "" {
					continue
				}
				for time.Now().Before(deadline) {
					k++
					st, body, err := p.do(ctx, "POST", sid, fmt.Sprintf(`42%d["echo","tag-%s"]`, k, me), attacker)
					if attacker {
						expects.Add(1)
					}
					if err != nil || st != 200 {
						break
					}
					if !strings.EqualFold(body, "ok") && !attacker {
						note(fmt.Sprintf("%s: POST answered %q", me, body))
					}
					st, body, err = p.do(ctx, "GET", sid, "", false)
					if err != nil {
						break
					}
					if foreignTag(body, me) {
						note(fmt.Sprintf("%s: poll answered with %q", me, body))
					}
					if strings.EqualFold(body, "ok") {
						note(fmt.Sprintf("%s: poll answered %q, a POST's answer", me, body))
					}
					acks.Add(int64(strings.Count(body, "tag-"+me)))
					if atk7Ended(st, body) {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d acks read, %d POSTs with Expect", acks.Load(), expects.Load())
	require.Empty(t, wrong, "answers crossed between requests")
	require.NotZero(t, acks.Load())
}

// atk7Lingering counts the edge's goroutines still serving a client's
// WebSocket: relaying, reading a bridged client, or lingering after the
// close.
func atk7Lingering(t *testing.T, admin string) int {
	t.Helper()
	res, err := http.Get("http://" + admin + "/debug/pprof/goroutine?debug=1")
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	total := 0
	for _, group := range strings.Split(string(b), "\n\n") {
		if !strings.Contains(group, "relay.Linger") && !strings.Contains(group, "readClient") && !strings.Contains(group, "relay.Relay") {
			continue
		}
		n, _, _ := strings.Cut(strings.TrimPrefix(group, "goroutine profile: "), " @")
		if i := strings.LastIndex(n, "\n"); i >= 0 {
			n = n[i+1:]
		}
		var c int
		_, _ = fmt.Sscan(n, &c)
		total += c
	}
	return total
}

// Clients whose WebSocket the edge closes, and that then neither read,
// answer the close, nor close their side (a slowloris after the close),
// hold the edge's goroutine and socket for the grace at most (5 s,
// controlWait / CloseGrace): then the edge lets go of them all.
// Closes: a message over max_payload (1009), and the client's own
// Engine.IO close packet (on a bridged session, the edge closes with 1001
// and holds the worker's session).
//
// The second one holds them 10 s: clientSocket.close half-closes with a
// 5 s read deadline, readClient reads on until that deadline, and the
// relay.Linger it defers then half-closes again with a fresh 5 s.
func TestAdversarialSilentClientsAfterTheCloseAreLetGoWithinTheGrace(t *testing.T) {
	worker := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1"})
	const n = 60
	for _, mode := range atk7Modes() {
		edgeAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		edge := testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	socketio_proxy %[2]s {
		max_payload 1000
		%[3]s
	}
}
`, edgeAddr, worker.Addr, mode)), edgeAddr)
		for _, how := range []string{"max_payload", "engine.io close"} {
			t.Run(fmt.Sprintf("%q/%s", mode, how), func(t *testing.T) {
				if how == "engine.io close" && mode == "" {
					// A relayed session: the edge passes the packet on
					// and does not close; the worker's own heartbeat
					// ends the session, as before the lingering close.
					t.Skip("the edge sends no close on a relayed session")
				}
				var conns []*atk7WS
				for range n {
					conns = append(conns, atk7Dial(t, edgeAddr))
				}
				for _, c := range conns {
					if how == "max_payload" {
						require.NoError(t, c.send(`42["echo","`+strings.Repeat("x", 2000)+`"]`))
					} else {
						require.NoError(t, c.send("1"))
					}
				}
				start := time.Now()
				// Then nothing: no read, no close, until the end of the test.
				var left int
				for time.Since(start) < 15*time.Second {
					if left = atk7Lingering(t, edge.AdminAddr); left == 0 {
						break
					}
					time.Sleep(100 * time.Millisecond) // polling the profile
				}
				took := time.Since(start)
				t.Logf("%d clients let go after %v", n, took.Round(100*time.Millisecond))
				require.Zero(t, left, "goroutines still on clients after 15 s")
				require.Less(t, took, 7*time.Second, "the edge held closed clients past its 5 s grace")
			})
		}
	}
}

// A POST is never sent twice: a worker that reads a client's POST on a
// kept connection and then closes it without an answer (it crashed, or
// restarted) has the POST once; the client gets an error and sends it
// again itself if it wants to.
func TestAdversarialAPostOnAKeptConnectionIsNeverSentTwice(t *testing.T) {
	fake := startAtk7Fake(t, nil, 0, nil)
	fake.dropPost = func(n int32) bool { return n == 1 }
	edge := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	socketio_proxy %[2]s
}
`, edge, fake.addr)), edge)
	status, open := atk7Poll(t, edge, "GET", "", "")
	require.Equal(t, 200, status, open)
	sid := sidPattern.FindStringSubmatch(open)[1]
	// The handshake's connection is kept: the POST goes out on it.
	status, body := atk7Poll(t, edge, "POST", sid, `42["echo","once"]`)
	t.Logf("the client's POST: %d %q", status, body)
	require.Equal(t, int32(1), fake.posts.Load(), "the worker read the POST more than once")
	require.NotEqual(t, 200, status, "a POST the worker never answered was answered 200")
}

// A config reload while closed clients linger (silent, holding their
// side open) neither waits for them nor keeps them past the grace, and
// sessions opened after it work; and the clients' late messages never
// reach the worker (an observer in their room sees no broadcast).
func TestAdversarialReloadWhileClosedClientsLinger(t *testing.T) {
	worker := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1"})
	for _, mode := range atk7Modes() {
		t.Run(fmt.Sprintf("%q", mode), func(t *testing.T) {
			addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
			config := func(max int) testenv.EdgeConfig {
				return testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	socketio_proxy %[2]s {
		max_payload %[4]d
		%[3]s
	}
}
`, addr, worker.Addr, mode, max))
			}
			edge := testenv.StartEdge(t, config(1000), addr)
			room := fmt.Sprintf("atk7-reload-%d", time.Now().UnixNano())
			obs := atk7Dial(t, addr)
			obs.send(`420["join","` + room + `"]`)
			obs.until(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "430") })
			var conns []*atk7WS
			for range 40 {
				c := atk7Dial(t, addr)
				c.send(`421["join","` + room + `"]`)
				c.until(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "431") })
				conns = append(conns, c)
			}
			for _, c := range conns {
				require.NoError(t, c.send(`42["echo","`+strings.Repeat("x", 2000)+`"]`))
			}
			// Each is closed with 1009 before the reload (it reads the
			// close and does not answer it): a reload that came first
			// would raise the limit before the edge read the message,
			// which then is no longer over it.
			for i, c := range conns {
				var err error
				for err == nil {
					_, _, err = c.read(5 * time.Second)
				}
				var ce *websocket.CloseError
				require.ErrorAs(t, err, &ce, "client %d", i)
				require.Equal(t, websocket.CloseMessageTooBig, ce.Code, "client %d", i)
			}
			start := time.Now()
			edge.Reload(t, config(5000))
			t.Logf("reload took %v", time.Since(start).Round(10*time.Millisecond))
			for i, c := range conns {
				_ = c.send(fmt.Sprintf(`42["broadcast",{"room":"%s","data":"late-%d"}]`, room, i))
			}
			// A new session works after the reload.
			n := atk7Dial(t, addr)
			n.send(`421["echo","fresh"]`)
			n.until(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "431") && strings.Contains(m, "fresh") })
			var left int
			for time.Since(start) < 15*time.Second {
				if left = atk7Lingering(t, edge.AdminAddr); left <= 4 { // obs and n: relayed or bridged
					break
				}
				time.Sleep(100 * time.Millisecond) // polling the profile
			}
			t.Logf("closed clients let go after %v", time.Since(start).Round(100*time.Millisecond))
			require.LessOrEqual(t, left, 4, "goroutines still on closed clients")
			require.Less(t, time.Since(start), 7*time.Second)
			end := time.Now().Add(2 * time.Second)
			for time.Now().Before(end) {
				_, m, err := obs.read(time.Until(end))
				if err != nil {
					break
				}
				require.NotContains(t, m, "late-", "a message sent after the 1009 close reached the worker")
			}
		})
	}
}

// A worker restarted on its address while the edge keeps connections to
// its former process: the first requests after it is back (a handshake,
// the POST and the GET of a new session) go out on fresh connections,
// not on kept ones the dead process can no longer answer.
func TestAdversarialWorkerRestartLeavesNoDeadKeptConnection(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", withTLS), func(t *testing.T) {
			opts := testenv.FlaskOptions{Name: "w1", SecretKey: "atk7-restart"}
			transport := ""
			if withTLS {
				ca := testenv.NewTestCA(t, "atk7 restart CA")
				files := ca.Issue(t, "w1")
				opts.TLS = &files
				transport = "transport http {\n\t\t\ttls_trust_pool file " + ca.CertFile + "\n\t\t}"
			}
			worker := testenv.StartFlaskWorker(t, opts)
			addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
			testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	socketio_proxy {
		to %[2]s
		%[3]s
	}
}
`, addr, worker.Addr, transport)), addr)
			session := func() {
				t.Helper()
				status, open := atk7Poll(t, addr, "GET", "", "")
				require.Equal(t, 200, status, open)
				sid := sidPattern.FindStringSubmatch(open)[1]
				status, body := atk7Poll(t, addr, "POST", sid, "40")
				require.Equal(t, 200, status, body)
				status, body = atk7Poll(t, addr, "GET", sid, "")
				require.Equal(t, 200, status, body)
				require.Contains(t, body, `40{"sid"`)
			}
			// Several kept connections.
			var wg sync.WaitGroup
			for range 4 {
				wg.Add(1)
				go func() { defer wg.Done(); session() }()
			}
			wg.Wait()
			_, port, _ := net.SplitHostPort(worker.Addr)
			var p int
			_, _ = fmt.Sscan(port, &p)
			worker.Kill()
			opts.Port = p
			testenv.StartFlaskWorker(t, opts)
			for range 4 {
				session()
			}
		})
	}
}
