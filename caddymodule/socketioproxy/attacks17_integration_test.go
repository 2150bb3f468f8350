package socketioproxy_test

// Attack session 17: connections replayed to the keeper's net/http park
// (and sleep) again once their replayed bytes are read (cadb866,
// keep.go's replayed), and held connections sleep after 250 ms instead
// of a second (59ee2b6, park.SleepAfter). The oracles are atk15's: the
// edge's descriptors in /proc (asleep), its goroutines, its log.

import (
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// atk17Live waits until a fresh connection's request with Origin
// advAllowed gets no CORS header: the config that removed it is live.
func atk17Live(t *testing.T, s *atk13Stack) {
	t.Helper()
	h := map[string]string{"Origin": advAllowed}
	require.Eventually(t, func() bool {
		f := atk11Dial(t, s.addr)
		defer f.c.Close()
		res, _, err := f.do("GET", "/fake/echo", h, "")
		return err == nil && res.Header.Get("Access-Control-Allow-Origin") == ""
	}, 10*time.Second, 50*time.Millisecond, "the reload took effect")
}

// A client on a kept connection starts a request before a reload and
// ends it after: the first bytes of its head come before the reload,
// the rest once the new config is live (here the new config removes the
// request's Origin from edge_cors). Caddy's own net/http closes such a
// connection at the reload (a kept-alive connection reading its next
// head is idle: Shutdown closes it), so the request is never judged by
// the old config after the reload. Three connections: one net/http
// keeps (the reference), one the edge parked whose head h1serve is
// reading (woken by its first bytes, it waits for the rest under
// read_header, a minute by default), and one the edge parked whose head
// is larger than h1serve's 4 KiB buffer (declined, handed to the
// keeper's own net/http, where it is a new connection: Shutdown leaves
// a new connection alone for 5 s). Expected: each connection closed by
// the reload, or its request judged by the new config (no CORS header
// for the removed Origin). FAILED at 59ee2b6 for the connection h1serve
// is reading: its request is served after the reload (the new config
// live, the reload returned) by the old config's handler chain: 200 with
// Access-Control-Allow-Origin: the removed Origin (then Connection:
// close). keeper.stop closes the parked connections and shuts the
// keeper's net/http down, but a connection woken before the stop and
// being read by h1serve (keeper.woken -> h1serve.Server.Serve ->
// readHead, waiting up to read_header) is no longer in k.parked and
// nothing interrupts its read; Server.Closing is only looked at once the
// response is written. The other two HOLD (closed by the reload; the
// keeper's net/http closes the handed-over connection too). Fixed:
// keeper.stop calls h1serve's CloseIdle, which cuts the read of a
// connection waiting for or reading a head, as Shutdown closes net/http's
// idle connections.
func TestAttack17HeadTrickledAcrossAReloadIsServedByTheOldConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		pad  int // bytes of an X-Pad header in the head's first part
	}{{"net/http", 0}, {"parked, read by h1serve", 0}, {"parked, over 4 KiB, declined to the keeper's net/http", 4200}} {
		t.Run(tc.name, func(t *testing.T) {
			s := atk13Start(t)
			var c *atk11Conn
			if tc.name == "net/http" {
				c = s.kept(t)
			} else {
				c = s.parked(t)
			}
			idle := atk12Parked(t, s.edge, "idle")
			first := "GET /fake/echo?trickled=1&" + atk13Q + " HTTP/1.1\r\nHost: " + s.addr + "\r\n"
			if tc.pad > 0 {
				first += "X-Pad: " + strings.Repeat("p", tc.pad) + "\r\n"
			}
			first += "Origin: " + advAllowed + "\r\nX-A: "
			require.NoError(t, c.raw(first))
			if tc.name != "net/http" {
				// Woken: no longer parked idle; h1serve (or the keeper's
				// net/http) is reading the head.
				require.Eventually(t, func() bool { return atk12Parked(t, s.edge, "idle") <= idle-1 },
					5*time.Second, 5*time.Millisecond, "the parked connection woke")
			}
			if tc.pad > 0 {
				require.Eventually(t, func() bool {
					_, dump := atk9GoroutineDump(t, s.edge.AdminAddr)
					return strings.Contains(atk12Frames(dump, "net/http.(*conn).readRequest"), "readRequest")
				}, 5*time.Second, 10*time.Millisecond, "the head went to the keeper's net/http")
			}
			atk10Reload(t, s.edge, s.config("http://other.example"))
			atk17Live(t, s)
			rest := "after\r\n\r\n"
			if err := c.raw(rest); err != nil {
				t.Logf("%s: the connection was closed by the reload (%v)", tc.name, err)
				return
			}
			res, body, err := c.read("GET", 5*time.Second)
			if err != nil {
				t.Logf("%s: the connection was closed by the reload (%v)", tc.name, err)
				return
			}
			assert.Empty(t, res.Header.Values("Access-Control-Allow-Origin"),
				"%s: a request whose head was finished after a reload that removed its Origin was judged by the old config: %d %q (Connection: close %v)",
				tc.name, res.StatusCode, body, res.Close)
		})
	}
}

// atk17Post is a POST of a session's (q is "&sid=..."), with extra
// header lines.
func atk17Post(addr, q, body string, hdr ...string) string {
	h := ""
	for _, l := range hdr {
		h += l + "\r\n"
	}
	return "POST " + atk11Path + q + " HTTP/1.1\r\nHost: " + addr + "\r\n" + h +
		"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

// atk17Chunked is atk17Post with a chunked body (in two chunks).
func atk17Chunked(addr, q, body string) string {
	half := len(body) / 2
	return "POST " + atk11Path + q + " HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: text/plain;charset=UTF-8\r\nTransfer-Encoding: chunked\r\n\r\n" +
		fmt.Sprintf("%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n", half, body[:half], len(body)-half, body[half:])
}

// atk17Get is a GET of a session's, with extra header lines.
func atk17Get(addr, q string, hdr ...string) string {
	h := ""
	for _, l := range hdr {
		h += l + "\r\n"
	}
	return "GET " + atk11Path + q + " HTTP/1.1\r\nHost: " + addr + "\r\n" + h + "\r\n"
}

// atk17Write writes raw bytes on c.
func atk17Write(c *atk16Conn, b string) error {
	_ = c.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := io.WriteString(c.c, b)
	return err
}

// atk17Read reads one final answer on c, 1xx answers skipped.
func atk17Read(c *atk16Conn, d time.Duration) (code int, body string, closeAfter bool, err error) {
	_ = c.c.SetReadDeadline(time.Now().Add(d))
	defer c.c.SetReadDeadline(time.Time{})
	for {
		res, err := http.ReadResponse(c.br, nil)
		if err != nil {
			return 0, "", false, err
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode >= 100 && res.StatusCode < 200 {
			continue
		}
		return res.StatusCode, string(b), res.Close, err
	}
}

// atk17Ack is what the echo acks carry ("data"), in order.
var atk17Ack = regexp.MustCompile(`43\d*\[\{"data":"([^"]*)"`)

// atk17Acks reads se's GET answers (sending the next GET after each)
// until the acks of want have all come or d passes; it returns every
// ack's data seen, in order, and leaves a GET waiting.
func atk17Acks(se *atk16Session, want []string, d time.Duration) ([]string, error) {
	var got []string
	deadline := time.Now().Add(d)
	need := map[string]bool{}
	for _, w := range want {
		need[w] = true
	}
	for len(need) > 0 {
		code, body, _, err := atk17Read(se.gets, time.Until(deadline))
		if err != nil {
			return got, fmt.Errorf("GET answer (still awaited %v): %w", need, err)
		}
		if code != 200 {
			return got, fmt.Errorf("GET answer %d %q", code, body)
		}
		for _, m := range atk17Ack.FindAllStringSubmatch(body, -1) {
			got = append(got, m[1])
			delete(need, m[1])
		}
		if err := se.gets.send("GET", "&sid="+se.sid, ""); err != nil {
			return got, err
		}
	}
	return got, nil
}

// atk17AsleepIno waits until the edge's end of c sleeps.
func atk17AsleepIno(t *testing.T, pid int, c net.Conn, what string) {
	t.Helper()
	ino := atk15Inodes(t, c)[0]
	require.NotZero(t, ino, "%s: the connection is gone", what)
	ok := assert.Eventually(t, func() bool { return atk15Sleeping(t, pid)[ino] }, 10*time.Second, 20*time.Millisecond)
	require.True(t, ok, "%s: the connection is still awake 10 s later (SleepAfter is 250 ms)", what)
}

// A session's kept POST connection carries, round after round, requests
// that h1serve cannot serve alone and replays to the keeper's net/http:
// two POSTs pipelined, a POST with Expect: 100-continue, a chunked one,
// one whose head is over 4 KiB, one with an empty line after it, one
// with a header h1serve declines (TE), a POST followed by part of the
// next (the rest 300 ms later, as the connection would fall asleep),
// a head split 300 ms apart, a body cut 350 ms, three odd ones in one
// write; between rounds the connection must fall asleep again. The GET
// connection likewise: GETs declined by h1serve (TE, a 5 KiB head), and
// a GET with a POST pipelined behind it. Then a last round ends with
// Connection: close. Expected: every POST answered 200 once, in order;
// every echo acknowledged exactly once, in the order sent (nothing lost,
// duplicated or reordered between what net/http's buffer held and what
// the replayConn still held); the connections asleep after each round;
// the last closed after its answer; no error in the edge's log. HOLDS at
// 59ee2b6.
func TestAttack17PipelinesThroughNetHTTPThenSleepAgain(t *testing.T) {
	s := atk15Start(t, map[string]string{"PING_INTERVAL": "60", "PING_TIMEOUT": "60"}, "")
	se := atk16OpenMany(t, s.addr, "r17", 1, 1)[0]
	caster := atk16OpenMany(t, s.addr, "", 1, 1)[0]
	q := "&sid=" + se.sid
	a := s.addr
	ackID := 0
	echo := func(tag string) string { ackID++; return "42" + strconv.Itoa(ackID) + `["echo","` + tag + `"]` }
	pad := "X-Pad: " + strings.Repeat("p", 5000)
	type round struct {
		name  string
		parts []string // written one after the other, gap apart
		gap   time.Duration
		tags  []string
		close bool // the last request says Connection: close
	}
	var rounds []round
	for i, shape := range []string{"post+post", "expect+post", "chunked+post", "bighead+post", "post+crlf+post", "te+post",
		"post+half", "split-head", "split-body", "chunked+expect+bighead"} {
		t1, t2, t3 := fmt.Sprintf("r%d-a", i), fmt.Sprintf("r%d-b", i), fmt.Sprintf("r%d-c", i)
		r := round{name: shape, tags: []string{t1, t2}}
		p1, p2 := atk17Post(a, q, echo(t1)), atk17Post(a, q, echo(t2))
		switch shape {
		case "post+post":
			r.parts = []string{p1 + p2}
		case "expect+post":
			r.parts = []string{atk17Post(a, q, echo(t1), "Expect: 100-continue") + p2}
		case "chunked+post":
			r.parts = []string{atk17Chunked(a, q, echo(t1)) + p2}
		case "bighead+post":
			r.parts = []string{atk17Post(a, q, echo(t1), pad) + p2}
		case "post+crlf+post":
			r.parts = []string{p1 + "\r\n" + p2}
		case "te+post":
			r.parts = []string{atk17Post(a, q, echo(t1), "TE: trailers") + p2}
		case "post+half":
			r.parts, r.gap = []string{p1 + p2[:20], p2[20:]}, 300*time.Millisecond
		case "split-head":
			r.parts, r.gap = []string{p1[:30], p1[30:] + p2}, 300*time.Millisecond
		case "split-body":
			r.parts, r.gap = []string{p1 + p2[:len(p2)-3], p2[len(p2)-3:]}, 350*time.Millisecond
		case "chunked+expect+bighead":
			r.tags = append(r.tags, t3)
			r.parts = []string{atk17Chunked(a, q, echo(t1)) + atk17Post(a, q, echo(t2), "Expect: 100-continue") + atk17Post(a, q, echo(t3), pad)}
		}
		rounds = append(rounds, r)
	}
	rounds = append(rounds, round{name: "post+close", tags: []string{"rz-a", "rz-b"}, close: true,
		parts: []string{atk17Post(a, q, echo("rz-a")) + atk17Post(a, q, echo("rz-b"), "Connection: close")}})

	for _, r := range rounds {
		atk17AsleepIno(t, s.pid, se.post.c, "before round "+r.name)
		for i, p := range r.parts {
			if i > 0 {
				time.Sleep(r.gap)
			}
			require.NoError(t, atk17Write(se.post, p), r.name)
		}
		for i := range r.tags {
			code, body, closeAfter, err := atk17Read(se.post, 10*time.Second)
			require.NoError(t, err, "%s: POST %d's answer", r.name, i+1)
			require.Equal(t, 200, code, "%s: POST %d: %s", r.name, i+1, body)
			require.Equal(t, "ok", strings.ToLower(body), r.name)
			assert.Equal(t, r.close && i == len(r.tags)-1, closeAfter, "%s: POST %d's Connection: close", r.name, i+1)
		}
		got, err := atk17Acks(se, r.tags, 10*time.Second)
		require.NoError(t, err, r.name)
		assert.Equal(t, r.tags, got, "%s: the echoes acknowledged once each, in order", r.name)
		if r.close {
			_, closed := (&atk11Conn{c: se.post.c, br: se.post.br}).readAll(3 * time.Second)
			assert.True(t, closed, "%s: the connection closed after the answer that said so", r.name)
		}
	}

	// The GET connection: GETs h1serve declines, then a POST pipelined
	// behind a waiting GET.
	post := func(tag string) {
		p, err := atk16Dial(s.addr)
		require.NoError(t, err)
		defer p.c.Close()
		code, body, err := p.do("POST", q, echo(tag))
		require.NoError(t, err)
		require.Equal(t, 200, code, body)
	}
	// Answer the GET left waiting, then send the odd ones.
	post("g0")
	got, err := atk17Acks(se, []string{"g0"}, 10*time.Second)
	require.NoError(t, err)
	require.Equal(t, []string{"g0"}, got)
	for i, hdr := range []string{"TE: trailers", pad} {
		// The GET left waiting by atk17Acks is answered by an echo;
		// the odd GET goes next.
		tag := fmt.Sprintf("g%d", i+1)
		atk17AsleepIno(t, s.pid, se.gets.c, "GET connection before "+tag)
		post(tag)
		code, body, _, err := atk17Read(se.gets, 10*time.Second)
		require.NoError(t, err)
		require.Equal(t, 200, code, body)
		require.Contains(t, body, `"data":"`+tag+`"`)
		err = atk17Write(se.gets, atk17Get(a, q, hdr))
		require.NoError(t, err)
		require.Eventually(t, func() bool { return inFlight(t, s.edge) >= 1 }, 5*time.Second, 10*time.Millisecond)
		atk17AsleepIno(t, s.pid, se.gets.c, "GET connection waiting after an odd GET "+tag)
		tag += "x"
		post(tag)
		code, body, _, err = atk17Read(se.gets, 10*time.Second)
		require.NoError(t, err)
		require.Equal(t, 200, code, body)
		require.Contains(t, body, `"data":"`+tag+`"`)
		require.NoError(t, se.gets.send("GET", q, ""))
	}
	// A GET with a POST pipelined behind it (declined GET: TE).
	atk17AsleepIno(t, s.pid, se.gets.c, "GET connection before the pipeline")
	post("g9")
	code, body, _, err := atk17Read(se.gets, 10*time.Second)
	require.NoError(t, err)
	require.Contains(t, body, `"data":"g9"`, code)
	err = atk17Write(se.gets, atk17Get(a, q, "TE: trailers")+atk17Post(a, q, echo("behind")))
	require.NoError(t, err)
	// (Answered by a broadcast: a POST of the session's own would be a
	// second POST in flight with the one pipelined, refused 400.)
	atk16Broadcast(t, caster, "r17", "front")
	code, body, _, err = atk17Read(se.gets, 10*time.Second)
	require.NoError(t, err)
	require.Equal(t, 200, code, body)
	require.Contains(t, body, `"data":"front"`)
	code, body, _, err = atk17Read(se.gets, 10*time.Second)
	require.NoError(t, err, "the POST pipelined behind the GET")
	require.Equal(t, 200, code, body)
	require.NoError(t, se.gets.send("GET", q, ""))
	got, err = atk17Acks(se, []string{"behind"}, 10*time.Second)
	require.NoError(t, err)
	assert.Equal(t, []string{"behind"}, got)
	atk17AsleepIno(t, s.pid, se.gets.c, "GET connection after the pipeline")
	assert.Empty(t, atk16LogProblems(s.edge), "the edge's log")
}

// atk17Baseline opens and closes one session, and returns the edge's
// descriptors (less those to the worker) and goroutines then.
func atk17Baseline(t *testing.T, s *atk15Stack) (baseFD, baseG int) {
	t.Helper()
	warm := atk16OpenMany(t, s.addr, "", 1, 1)
	warm[0].close()
	atk11Waiting(t, s.edge, 0)
	total, _, others, _ := atk15Census(t, s.pid, s.addr)
	return total - others, atk9Goroutines(t, s.edge.AdminAddr)
}

// atk17Chatter has each session POST K echoes on its kept connection,
// each after a pause drawn from [lo, hi) (seeded: the same pauses each
// run), while its GETs are read on another goroutine. It returns, per
// session, the problems seen.
func atk17Chatter(sessions []*atk16Session, k int, lo, hi time.Duration, seed int64) []string {
	var mu sync.Mutex
	var bad []string
	report := func(f string, a ...any) {
		mu.Lock()
		bad = append(bad, fmt.Sprintf(f, a...))
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for i, se := range sessions {
		rng := rand.New(rand.NewSource(seed + int64(i)))
		pauses := make([]time.Duration, k)
		for j := range pauses {
			pauses[j] = lo + time.Duration(rng.Int63n(int64(hi-lo)))
		}
		var want []string
		for j := range k {
			want = append(want, fmt.Sprintf("s%d-m%d-%s", i, j, se.sid))
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j, tag := range want {
				time.Sleep(pauses[j])
				code, body, err := se.post.do("POST", "&sid="+se.sid, "42"+strconv.Itoa(j+1)+`["echo","`+tag+`"]`)
				if err != nil || code != 200 {
					report("session %d: POST %d: %d %q %v", i, j, code, body, err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			got, err := atk17Acks(se, want, time.Duration(k)*hi+15*time.Second)
			if err != nil {
				report("session %d: %v (got %d acks)", i, err, len(got))
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				report("session %d: acks %v, want %v", i, got, want)
			}
		}()
	}
	wg.Wait()
	return bad
}

// Sessions chatting at the pace that now races the sleep: each session
// POSTs an echo every 200 to 600 ms on its kept connection, so that its
// POST connection, its waiting GET's client connection and the GET's
// worker connection are put to sleep (250 to 500 ms after they are
// held) just as its client sends or its worker answers, over and over;
// strangers make handshakes meanwhile. Then the clients leave, each
// 200 to 600 ms after its last message, half with a reset. Expected:
// every POST answered, every echo acknowledged exactly once, in order,
// to its own session; nothing in the edge's log; once everyone has
// left, the edge's descriptors and goroutines back to their baseline.
// HOLDS at 59ee2b6.
func TestAttack17MessagesEvery200To600Milliseconds(t *testing.T) {
	s := atk15Start(t, map[string]string{"PING_INTERVAL": "60", "PING_TIMEOUT": "60"}, "")
	baseFD, baseG := atk17Baseline(t, s)
	sessions := atk16OpenMany(t, s.addr, "", 40, 8)
	stop := make(chan struct{})
	strangers := make(chan error, 1)
	go func() {
		defer close(strangers)
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := atk16Dial(s.addr)
			if err != nil {
				strangers <- err
				return
			}
			code, body, err := c.do("GET", "", "")
			c.c.Close()
			if err != nil || code != 200 {
				strangers <- fmt.Errorf("handshake: %d %q %v", code, body, err)
				return
			}
			time.Sleep(37 * time.Millisecond)
		}
	}()
	bad := atk17Chatter(sessions, 14, 200*time.Millisecond, 600*time.Millisecond, 17)
	close(stop)
	require.NoError(t, <-strangers, "a stranger's handshake meanwhile")
	if len(bad) > 10 {
		bad = append(bad[:10], "...")
	}
	assert.Empty(t, bad, "sessions chatting every 200 to 600 ms")

	var wg sync.WaitGroup
	for i, se := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(200*time.Millisecond + time.Duration(i)*10*time.Millisecond)
			if i%2 == 0 {
				atk15Reset(se.post.c)
				atk15Reset(se.gets.c)
			} else {
				se.close()
			}
		}()
	}
	wg.Wait()
	assert.Empty(t, atk16LogProblems(s.edge), "the edge's log")
	atk15Settle(t, s.edge, s.addr, s.pid, baseFD, baseG, "after every client left")
}

// Clients hang up, reset, or send and hang up, at every moment from
// 150 to 630 ms after their connection was held (6 ms apart), across
// the sweep that puts it to sleep (250 to 500 ms): kept connections of
// strangers after a handshake (reset; close; a request then a reset; a
// request then a half-close, whose answer (an empty 200, as net/http's
// on a fresh connection) must still come; a request
// whose answer is read), and sessions whose waiting GET's client resets
// or closes at that moment while an echo is POSTed at the same time
// (the worker's answer racing the hang-up and the sleep). Expected: the
// edge stays up and logs no panic or error, each answer read is right,
// every session whose client stayed serves its next GET, and once
// everyone has left the edge's descriptors and goroutines are back to
// their baseline. HOLDS at 59ee2b6.
func TestAttack17HangUpsAsConnectionsFallAsleep(t *testing.T) {
	s := atk15Start(t, map[string]string{"PING_INTERVAL": "60", "PING_TIMEOUT": "60"}, "")
	baseFD, baseG := atk17Baseline(t, s)
	var mu sync.Mutex
	var bad []string
	report := func(f string, a ...any) {
		mu.Lock()
		bad = append(bad, fmt.Sprintf(f, a...))
		mu.Unlock()
	}
	const n = 80
	sessions := atk16OpenMany(t, s.addr, "", 20, 8)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := atk16Dial(s.addr)
			if err != nil {
				report("stranger %d: %v", i, err)
				return
			}
			defer c.c.Close()
			code, body, err := c.do("GET", "", "")
			if err != nil || code != 200 {
				report("stranger %d: handshake %d %q %v", i, code, body, err)
				return
			}
			time.Sleep(150*time.Millisecond + time.Duration(i)*6*time.Millisecond)
			req := "GET " + atk11Path + " HTTP/1.1\r\nHost: " + s.addr + "\r\n\r\n"
			switch i % 5 {
			case 0:
				atk15Reset(c.c)
			case 1:
				c.c.Close()
			case 2:
				atk15RequestThenReset(c.c, req)
			case 3:
				if err := atk17Write(c, req); err != nil {
					report("stranger %d: %v", i, err)
					return
				}
				_ = c.c.(*net.TCPConn).CloseWrite()
				// (net/http takes the half-close for the client leaving
				// and cancels the request: a fresh connection gets an
				// empty 200 too. An answer must come, whole.)
				code, body, _, err := atk17Read(c, 10*time.Second)
				if err != nil || code != 200 || body != "" && !strings.Contains(body, `"sid"`) {
					report("stranger %d: a request then a half-close: %d %q %v", i, code, body, err)
				}
			case 4:
				code, body, err := c.do("GET", "", "")
				if err != nil || code != 200 || !strings.Contains(body, `"sid"`) {
					report("stranger %d: a request: %d %q %v", i, code, body, err)
				}
			}
		}()
	}
	for i, se := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(150*time.Millisecond + time.Duration(i)*24*time.Millisecond)
			done := make(chan struct{})
			go func() {
				defer close(done)
				code, body, err := se.post.do("POST", "&sid="+se.sid, `421["echo","race"]`)
				if err != nil || code != 200 {
					report("session %d: the echo racing the hang-up: %d %q %v", i, code, body, err)
				}
			}()
			if i%2 == 0 {
				atk15Reset(se.gets.c)
			} else {
				se.gets.c.Close()
			}
			<-done
			// The session goes on on a new connection: its next GET
			// waits (once the last is let go), and is answered by the
			// ack of a new echo (the ack of the racing echo, if the
			// worker answered the GET whose client left, is lost with
			// it, as with net/http).
			g, err := atk16Dial(s.addr)
			if err != nil {
				report("session %d: %v", i, err)
				return
			}
			se.gets = g
			deadline := time.Now().Add(10 * time.Second)
			raceSeen := false
			for {
				if err := g.send("GET", "&sid="+se.sid, ""); err != nil {
					report("session %d: %v", i, err)
					return
				}
				code, body, _, err := atk17Read(g, 300*time.Millisecond)
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break // waiting
				}
				if err == nil && code == 400 && strings.Contains(body, "second") && time.Now().Before(deadline) {
					// The last GET is still being let go.
					time.Sleep(20 * time.Millisecond)
					continue
				}
				if err == nil && code == 200 && !raceSeen && strings.HasPrefix(body, `431[{"data":"race"`) && !strings.Contains(body, "\x1e") {
					// The ack of the racing echo, which the worker had
					// not sent when the GET whose client left was let
					// go: kept for the next GET, as it should be
					// (seen once in CI). Once only.
					raceSeen = true
					continue
				}
				report("session %d: its next GET: %d %q %v", i, code, body, err)
				return
			}
			code, body, err := se.post.do("POST", "&sid="+se.sid, `422["echo","after"]`)
			if err != nil || code != 200 {
				report("session %d: the echo after: %d %q %v", i, code, body, err)
				return
			}
			got, err := atk17Acks(se, []string{"after"}, 10*time.Second)
			if raceSeen {
				got = append(got, "race")
			}
			if err != nil || strings.Count(fmt.Sprint(got), "race") > 1 {
				report("session %d: acks after the hang-up %v: %v", i, got, err)
			}
		}()
	}
	wg.Wait()
	atk15StillAlive(t, s.edge, "clients hung up as their connections fell asleep")
	if len(bad) > 10 {
		bad = append(bad[:10], "...")
	}
	assert.Empty(t, bad)
	assert.Empty(t, atk16LogProblems(s.edge), "the edge's log")
	for _, se := range sessions {
		se.close()
	}
	atk15Settle(t, s.edge, s.addr, s.pid, baseFD, baseG, "after every client left")
}

// atk17EchoAll is atk16EchoAll with a minute for every answer (the
// machine may be busy: what is checked is that each comes, once, to its
// own session), and how long the slowest took.
func atk17EchoAll(t *testing.T, sessions []*atk16Session, tag string) time.Duration {
	t.Helper()
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	var slowest time.Duration
	for i, se := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := tag + strconv.Itoa(i) + "-" + se.sid
			if err := se.post.send("POST", "&sid="+se.sid, `429["echo","`+mine+`"]`); err != nil {
				mu.Lock()
				bad = append(bad, fmt.Sprintf("session %d's POST: %v", i, err))
				mu.Unlock()
				return
			}
			code, body, _, err := atk17Read(se.post, time.Minute)
			if err == nil && code != 200 {
				err = fmt.Errorf("%d %q", code, body)
			}
			var got []string
			if err == nil {
				got, err = atk17Acks(se, []string{mine}, time.Minute)
			}
			took := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			slowest = max(slowest, took)
			if err != nil {
				bad = append(bad, fmt.Sprintf("session %d: %v", i, err))
			} else if len(got) != 1 {
				bad = append(bad, fmt.Sprintf("session %d: acks %v, want only %s", i, got, mine))
			}
		}()
	}
	wg.Wait()
	if len(bad) > 10 {
		bad = append(bad[:10], "...")
	}
	assert.Empty(t, bad, "problems of %d sessions echoing at once (%s)", len(sessions), tag)
	return slowest
}

// 1,200 polling sessions opened at once (64 at a time), all asleep; then
// every session echoes at once on its sleeping kept connection, and at
// once again while the connections of the first round are being put to
// sleep, then once more asleep; then a broadcast wakes every GET.
// Expected: every connection asleep within 10 s once quiet, each session
// gets its own acks (once) and the one broadcast, nothing in the edge's
// log, and once everyone has left the edge's descriptors and goroutines
// are back to their baseline. HOLDS at 59ee2b6 (each round takes a few
// seconds on two busy cores; the round that races the sleeps is no
// slower than the others).
func TestAttack17ABurstOfTwelveHundredSessions(t *testing.T) {
	s := atk15Start(t, map[string]string{"PING_INTERVAL": "300", "PING_TIMEOUT": "60"}, "")
	baseFD, baseG := atk17Baseline(t, s)
	const n = 1200
	start := time.Now()
	sessions := atk16OpenMany(t, s.addr, "all", n, 64)
	caster := atk16OpenMany(t, s.addr, "", 1, 1)[0]
	t.Logf("%d sessions opened in %v", n, time.Since(start))
	atk16Asleep(t, s.pid, sessions, "after the burst")
	t.Logf("round e1 (asleep): slowest %v", atk17EchoAll(t, sessions, "e1-"))
	t.Logf("round e2 (being put to sleep): slowest %v", atk17EchoAll(t, sessions, "e2-"))
	atk16Asleep(t, s.pid, sessions, "after the echoes")
	t.Logf("round e3 (asleep): slowest %v", atk17EchoAll(t, sessions, "e3-"))
	atk16Asleep(t, s.pid, sessions, "after the echoes")
	from := atk16Broadcast(t, caster, "all", "b1")
	bodies, errs := atk16ReadAll(sessions, time.Minute)
	atk16CheckBroadcast(t, bodies, errs, from, "b1")
	assert.Empty(t, atk16LogProblems(s.edge), "the edge's log")
	for _, se := range sessions {
		se.close()
	}
	caster.close()
	atk15Settle(t, s.edge, s.addr, s.pid, baseFD, baseG, "after every client left")
}

// atk17Resilient is a polling client that goes on across closed
// connections, as a browser's: a POST without an answer was not
// delivered (it records which), a GET without an answer is sent again on
// a new connection.
type atk17Resilient struct {
	addr, sid  string
	gets, post *atk16Conn
	mu         sync.Mutex
	answered   map[string]bool // POSTed tags: true if their POST got 200
	acks       map[string]int
	redials    int
}

func (r *atk17Resilient) redial(c **atk16Conn) error {
	if *c != nil {
		(*c).c.Close()
	}
	n, err := atk16Dial(r.addr)
	if err != nil {
		return err
	}
	*c = n
	r.mu.Lock()
	r.redials++
	r.mu.Unlock()
	return nil
}

// postEcho POSTs an echo of tag, reporting whether it was answered 200.
func (r *atk17Resilient) postEcho(tag string, id int) (bool, error) {
	code, body, closeAfter, err := 0, "", false, r.post.send("POST", "&sid="+r.sid, "42"+strconv.Itoa(id)+`["echo","`+tag+`"]`)
	if err == nil {
		code, body, closeAfter, err = atk17Read(r.post, 10*time.Second)
	}
	r.mu.Lock()
	r.answered[tag] = err == nil && code == 200
	r.mu.Unlock()
	if err != nil || closeAfter {
		return false, r.redial(&r.post)
	}
	if code != 200 {
		return false, fmt.Errorf("POST %s: %d %q", tag, code, body)
	}
	return true, nil
}

// readUntil reads GET answers (sending GETs again as needed) until the
// ack of tag has come.
func (r *atk17Resilient) readUntil(tag string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		code, body, closeAfter, err := atk17Read(r.gets, time.Until(deadline))
		if err == nil && code == 400 && strings.Contains(body, "second") {
			// The GET that lost its connection is still being let go.
			time.Sleep(20 * time.Millisecond)
			if err := r.gets.send("GET", "&sid="+r.sid, ""); err != nil {
				return err
			}
			continue
		}
		if err == nil && code != 200 {
			return fmt.Errorf("GET: %d %q", code, body)
		}
		seen := false
		if err == nil {
			r.mu.Lock()
			for _, m := range atk17Ack.FindAllStringSubmatch(body, -1) {
				r.acks[m[1]]++
				seen = seen || m[1] == tag
			}
			r.mu.Unlock()
		}
		if err != nil || closeAfter {
			if err := r.redial(&r.gets); err != nil {
				return err
			}
		}
		if err := r.gets.send("GET", "&sid="+r.sid, ""); err != nil {
			if err := r.redial(&r.gets); err != nil {
				return err
			}
			if err := r.gets.send("GET", "&sid="+r.sid, ""); err != nil {
				return err
			}
		}
		if seen {
			return nil
		}
	}
	return fmt.Errorf("the ack of %s never came", tag)
}

// Reloads (six, 300 to 700 ms apart) while 40 sessions chat every 200
// to 600 ms: connections are being put to sleep, woken, served by
// h1serve or the keeper's net/http, when each old keeper stops (its
// parked and sleeping connections closed, its waiting GETs' answers
// saying Connection: close). The clients go on as a browser does, on
// new connections. Expected: a POST answered 200 was delivered exactly
// once (its echo acknowledged once), a POST that got no answer was not
// delivered (no ack): the edge never reads a request it then drops;
// every session ends with its last echo acknowledged; nothing in the
// edge's log; once everyone has left, the edge's descriptors and
// goroutines back to their baseline. HOLDS at 59ee2b6.
func TestAttack17ReloadsWhileSessionsChat(t *testing.T) {
	s := atk15Start(t, map[string]string{"PING_INTERVAL": "60", "PING_TIMEOUT": "60"}, "")
	reload := func(extra string) {
		atk10Reload(t, s.edge, testenv.EdgeConfig(strings.Replace(s.config(extra), "admin {$EDGE_ADMIN}", "admin "+s.edge.AdminAddr, 1)))
	}
	reload("max_payload 2MB")
	reload("")
	baseFD, baseG := atk17Baseline(t, s)
	const n, k = 40, 16
	sessions := atk16OpenMany(t, s.addr, "", n, 8)
	clients := make([]*atk17Resilient, n)
	for i, se := range sessions {
		clients[i] = &atk17Resilient{addr: s.addr, sid: se.sid, gets: se.gets, post: se.post,
			answered: map[string]bool{}, acks: map[string]int{}}
	}
	var mu sync.Mutex
	var bad []string
	report := func(f string, a ...any) {
		mu.Lock()
		bad = append(bad, fmt.Sprintf(f, a...))
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(1700 + i)))
			last := ""
			for j := 0; j < k || last == ""; j++ {
				time.Sleep(200*time.Millisecond + time.Duration(rng.Int63n(int64(400*time.Millisecond))))
				tag := fmt.Sprintf("s%d-m%d", i, j)
				ok, err := c.postEcho(tag, j+1)
				if err != nil {
					report("session %d: %v", i, err)
					return
				}
				if ok {
					if err := c.readUntil(tag, 15*time.Second); err != nil {
						report("session %d: %v", i, err)
						return
					}
					if j >= k-1 {
						last = tag
					}
				}
			}
		}()
	}
	rng := rand.New(rand.NewSource(17))
	for r := range 6 {
		time.Sleep(300*time.Millisecond + time.Duration(rng.Int63n(int64(400*time.Millisecond))))
		reload([]string{"max_payload 2MB", ""}[r%2])
	}
	wg.Wait()
	redials := 0
	for i, c := range clients {
		redials += c.redials
		for tag, ok := range c.answered {
			switch {
			case ok && c.acks[tag] != 1:
				report("session %d: %s answered 200, acknowledged %d times", i, tag, c.acks[tag])
			case !ok && c.acks[tag] != 0:
				report("session %d: %s got no answer, yet was delivered (acknowledged %d times)", i, tag, c.acks[tag])
			}
		}
	}
	t.Logf("%d connections opened again by the clients across the reloads", redials)
	if len(bad) > 12 {
		bad = append(bad[:12], "...")
	}
	assert.Empty(t, bad)
	assert.Empty(t, atk16LogProblems(s.edge), "the edge's log")
	for _, c := range clients {
		c.gets.c.Close()
		c.post.c.Close()
	}
	atk15Settle(t, s.edge, s.addr, s.pid, baseFD, baseG, "after every client left")
}
