package socketioproxy_test

// Attack session 16: sleeping connections (park.Hold, 5a1a55c, a17c389,
// d1a8122) woken all at once by a broadcast, and a sleeping GET ended
// early or its answer filtered: a namespace withdrawn by a reload, a
// drain cut, a session closed for its message rate. The oracle for
// "asleep" is atk15's reading of the edge's descriptors in /proc.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// atk16Conn is a raw polling connection usable from any goroutine: its
// methods return errors instead of failing the test.
type atk16Conn struct {
	c    net.Conn
	br   *bufio.Reader
	host string
}

func atk16Dial(addr string) (*atk16Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &atk16Conn{c: c, br: bufio.NewReader(c), host: addr}, nil
}

func (c *atk16Conn) send(method, query, body string) error {
	req := method + " " + atk11Path + query + " HTTP/1.1\r\nHost: " + c.host + "\r\n"
	if method == http.MethodPost {
		req += "Content-Type: text/plain;charset=UTF-8\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"
	}
	_ = c.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := io.WriteString(c.c, req+"\r\n"+body)
	return err
}

func (c *atk16Conn) read(d time.Duration) (int, string, error) {
	_ = c.c.SetReadDeadline(time.Now().Add(d))
	defer c.c.SetReadDeadline(time.Time{})
	res, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, "", err
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	return res.StatusCode, string(b), err
}

func (c *atk16Conn) do(method, query, body string) (int, string, error) {
	if err := c.send(method, query, body); err != nil {
		return 0, "", err
	}
	return c.read(10 * time.Second)
}

// atk16Session is a polling session on two connections; its GET is sent
// (waiting at the worker) between calls.
type atk16Session struct {
	sid        string
	gets, post *atk16Conn
}

// atk16Open opens a session as a browser does, connects "/", joins room
// (unless empty) and leaves a GET waiting at the worker.
func atk16Open(addr, room string) (*atk16Session, error) {
	g, err := atk16Dial(addr)
	if err != nil {
		return nil, err
	}
	p, err := atk16Dial(addr)
	if err != nil {
		g.c.Close()
		return nil, err
	}
	s := &atk16Session{gets: g, post: p}
	fail := func(what string, code int, body string, err error) (*atk16Session, error) {
		g.c.Close()
		p.c.Close()
		return nil, fmt.Errorf("%s: %d %q %v", what, code, body, err)
	}
	code, body, err := g.do("GET", "", "")
	m := sidOf.FindStringSubmatch(body)
	if err != nil || code != 200 || m == nil {
		return fail("handshake", code, body, err)
	}
	s.sid = m[1]
	q := "&sid=" + s.sid
	if code, body, err = p.do("POST", q, "40"); err != nil || code != 200 {
		return fail("CONNECT", code, body, err)
	}
	if code, body, err = g.do("GET", q, ""); err != nil || code != 200 || !strings.HasPrefix(body, "40{") {
		return fail("CONNECT reply", code, body, err)
	}
	if room != "" {
		if code, body, err = p.do("POST", q, `420["join","`+room+`"]`); err != nil || code != 200 {
			return fail("join", code, body, err)
		}
		if code, body, err = g.do("GET", q, ""); err != nil || code != 200 || !strings.Contains(body, `430[{"room":"`+room+`"`) {
			return fail("join's ack", code, body, err)
		}
	}
	if err := g.send("GET", q, ""); err != nil {
		return fail("GET", 0, "", err)
	}
	return s, nil
}

func (s *atk16Session) close() {
	s.gets.c.Close()
	s.post.c.Close()
}

// atk16OpenMany opens n sessions, k at a time.
func atk16OpenMany(t *testing.T, addr, room string, n, k int) []*atk16Session {
	t.Helper()
	out := make([]*atk16Session, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, k)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i], errs[i] = atk16Open(addr, room)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "session %d of %d", i, n)
	}
	t.Cleanup(func() {
		for _, s := range out {
			s.close()
		}
	})
	return out
}

// atk16ReadAll reads every session's GET answer at once; it returns the
// bodies and the errors (one per session).
func atk16ReadAll(sessions []*atk16Session, d time.Duration) ([]string, []error) {
	bodies := make([]string, len(sessions))
	errs := make([]error, len(sessions))
	var wg sync.WaitGroup
	for i, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body, err := s.gets.read(d)
			if err == nil && code != 200 {
				err = fmt.Errorf("status %d", code)
			}
			bodies[i], errs[i] = body, err
		}()
	}
	wg.Wait()
	return bodies, errs
}

// atk16Conns are the sessions' client connections.
func atk16Conns(sessions []*atk16Session) []net.Conn {
	var out []net.Conn
	for _, s := range sessions {
		out = append(out, s.gets.c, s.post.c)
	}
	return out
}

// atk16Asleep is atk15Asleep over the sessions' connections, naming
// those left awake.
func atk16Asleep(t *testing.T, pid int, sessions []*atk16Session, what string) {
	t.Helper()
	conns := atk16Conns(sessions)
	var mu sync.Mutex
	var awake []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		asleep := atk15Sleeping(t, pid)
		var now []string
		for i, ino := range atk15Inodes(t, conns...) {
			if !asleep[ino] {
				now = append(now, fmt.Sprintf("session %d's %s connection (edge inode %d)", i/2, [2]string{"GET", "POST"}[i%2], ino))
			}
		}
		mu.Lock()
		awake = now
		mu.Unlock()
		if len(awake) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(awake) > 10 {
		awake = append(awake[:10], "...")
	}
	// (Once only logged: 1 connection in 600 stayed awake in about a
	// third of the runs, a connection replayed to net/http; see
	// TestAttack16ConnectionsReplayedToNetHTTPSleepAgain.)
	assert.Empty(t, awake, "%s: awake 10 s after they were held (SleepAfter is 250 ms)", what)
}

// atk16Broadcast has caster broadcast data to room, and waits for its
// ack on its own GET (sent again after).
func atk16Broadcast(t *testing.T, caster *atk16Session, room, data string) (from string) {
	t.Helper()
	q := "&sid=" + caster.sid
	code, body, err := caster.post.do("POST", q, `427["broadcast",{"room":"`+room+`","data":"`+data+`"}]`)
	require.NoError(t, err)
	require.Equal(t, 200, code, body)
	code, body, err = caster.gets.read(10 * time.Second)
	require.NoError(t, err, "the caster's ack")
	require.Contains(t, body, `437[{"room":"`+room+`"`, "the caster's ack")
	require.NoError(t, caster.gets.send("GET", q, ""))
	m := sidOf.FindStringSubmatch(body)
	require.NotNil(t, m, body)
	return m[1]
}

// atk16CheckBroadcast checks that each session's GET got exactly the one
// broadcast packet of data (and nothing else but a ping).
func atk16CheckBroadcast(t *testing.T, bodies []string, errs []error, caster, data string) {
	t.Helper()
	want := `42["broadcast",{"room":"all","data":"` + data + `","from":"` + caster + `","worker":"w1"}]`
	var bad []string
	for i, body := range bodies {
		if errs[i] != nil {
			bad = append(bad, fmt.Sprintf("session %d: %v", i, errs[i]))
			continue
		}
		n := 0
		for _, pkt := range strings.Split(body, "\x1e") {
			switch {
			case pkt == want:
				n++
			case pkt == "2":
			default:
				bad = append(bad, fmt.Sprintf("session %d: unexpected packet %q", i, truncate(pkt, 200)))
			}
		}
		if n != 1 {
			bad = append(bad, fmt.Sprintf("session %d: %d copies of the broadcast in %q", i, n, truncate(body, 300)))
		}
	}
	if len(bad) > 10 {
		bad = append(bad[:10], "...")
	}
	assert.Empty(t, bad, "problems of %d sessions woken by broadcast %q", len(bodies), data)
}

// atk16EchoAll has every session POST an echo of its own payload at once
// on its (sleeping) kept connection, and checks each GET got its own ack.
func atk16EchoAll(t *testing.T, sessions []*atk16Session, tag string) {
	t.Helper()
	var wg sync.WaitGroup
	perrs := make([]error, len(sessions))
	for i, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body, err := s.post.do("POST", "&sid="+s.sid, `429["echo","`+tag+strconv.Itoa(i)+"-"+s.sid+`"]`)
			if err == nil && code != 200 {
				err = fmt.Errorf("status %d: %q", code, body)
			}
			perrs[i] = err
		}()
	}
	bodies, errs := atk16ReadAll(sessions, 15*time.Second)
	wg.Wait()
	var bad []string
	for i, s := range sessions {
		if perrs[i] != nil {
			bad = append(bad, fmt.Sprintf("session %d's POST: %v", i, perrs[i]))
		}
		if errs[i] != nil {
			bad = append(bad, fmt.Sprintf("session %d's GET: %v", i, errs[i]))
			continue
		}
		mine := `439[{"data":"` + tag + strconv.Itoa(i) + "-" + s.sid + `"`
		if !strings.Contains(bodies[i], mine) || strings.Count(bodies[i], `"data":"`+tag) != 1 {
			bad = append(bad, fmt.Sprintf("session %d: want its own echo %q, got %q", i, mine, truncate(bodies[i], 300)))
		}
	}
	if len(bad) > 10 {
		bad = append(bad[:10], "...")
	}
	assert.Empty(t, bad, "problems of %d sessions echoing at once (%s)", len(sessions), tag)
}

// atk16LogProblems are the edge's log lines of a panic or at error level.
func atk16LogProblems(e *testenv.Edge) string {
	return atk15LogLines(e.Output(), "panic", `"level":"error"`, "fatal")
}

// 300 idle polling sessions, all in room "all", asleep (the client's GET
// connection, the worker's connection of the GET and the kept POST
// connection each); one awake session then broadcasts to the room, the
// worker answering 300 sleeping GETs at once. Then every session echoes
// its own payload at once on its sleeping kept connection. Then the
// same again while 60 new sessions open concurrently. Expected: every
// session gets exactly the one broadcast, its own echo and nobody
// else's, none is lost, the edge logs no panic or error, and once every
// client leaves nothing is asleep and the edge's descriptors and
// goroutines are back to their baseline.
func TestAttack16BroadcastWakesSleepingSessions(t *testing.T) {
	s := atk15Start(t, map[string]string{"PING_INTERVAL": "60", "PING_TIMEOUT": "60"}, "")
	warm := atk16OpenMany(t, s.addr, "", 1, 1)
	warm[0].close()
	atk11Waiting(t, s.edge, 0)
	baseFD, _, others, _ := atk15Census(t, s.pid, s.addr)
	baseFD -= others
	baseG := atk9Goroutines(t, s.edge.AdminAddr)

	const n = 300
	start := time.Now()
	sessions := atk16OpenMany(t, s.addr, "all", n, 16)
	caster := atk16OpenMany(t, s.addr, "", 1, 1)[0]
	t.Logf("%d sessions opened in %v", n, time.Since(start))
	atk16Asleep(t, s.pid, sessions, "after opening")
	asleep := len(atk15Sleeping(t, s.pid))
	assert.GreaterOrEqual(t, asleep, 3*n, "the sessions' connections and their GETs' worker connections asleep")

	// Round 1: a broadcast wakes every GET at once.
	from := atk16Broadcast(t, caster, "all", "b1")
	bodies, errs := atk16ReadAll(sessions, 15*time.Second)
	atk16CheckBroadcast(t, bodies, errs, from, "b1")
	for _, se := range sessions {
		require.NoError(t, se.gets.send("GET", "&sid="+se.sid, ""))
	}
	atk16Asleep(t, s.pid, sessions, "after the broadcast b1")
	// Every session echoes at once on its sleeping kept connection.
	atk16EchoAll(t, sessions, "e1-")
	for _, se := range sessions {
		require.NoError(t, se.gets.send("GET", "&sid="+se.sid, ""))
	}
	atk16Asleep(t, s.pid, sessions, "after the echoes e1")

	// Round 2: the same while new sessions open.
	var fresh []*atk16Session
	opened := make(chan struct{})
	go func() {
		defer close(opened)
		for range 60 {
			se, err := atk16Open(s.addr, "")
			if err != nil {
				t.Errorf("a new session while the sleeping ones wake: %v", err)
				return
			}
			fresh = append(fresh, se)
		}
	}()
	time.Sleep(50 * time.Millisecond)
	from = atk16Broadcast(t, caster, "all", "b2")
	bodies, errs = atk16ReadAll(sessions, 15*time.Second)
	<-opened
	t.Cleanup(func() {
		for _, se := range fresh {
			se.close()
		}
	})
	atk16CheckBroadcast(t, bodies, errs, from, "b2")
	for _, se := range sessions {
		require.NoError(t, se.gets.send("GET", "&sid="+se.sid, ""))
	}
	everyone := append(append([]*atk16Session{}, sessions...), fresh...)
	atk16EchoAll(t, everyone, "e2-")
	assert.Empty(t, atk16LogProblems(s.edge), "the edge's log")

	for _, se := range everyone {
		se.close()
	}
	caster.close()
	atk15Settle(t, s.edge, s.addr, s.pid, baseFD, baseG, "after every client left")
}

// atk16Withdraw is atk14Withdraw with the GET (its client's connection,
// its worker connection and the kept POST connection) asleep before the
// reload that restricts /admin: it returns the parked GET and the
// edge's DISCONNECT POST as the worker read them, the client's answer,
// and the session's next GET's answer (the worker answering it with an
// event of "/").
func atk16Withdraw(t *testing.T, cookie string, sleep bool) (get, post *atk14Req, answer, next string) {
	f := startAtk14Fake(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	e := testenv.StartEdge(t, atk14Config(addr, f.addr, ""), addr)
	pid := atk15Pid(t, addr)
	h := map[string]string{"Cookie": cookie, "Origin": advAllowed}
	c := atk11Dial(t, addr)
	res, body, err := c.do("GET", atk11Path, h, "")
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode, body)
	sid := sidPattern.FindStringSubmatch(body)[1]
	q := atk11Path + "&sid=" + sid
	p := atk11Dial(t, addr)
	res, body, err = p.do("POST", q, h, "40\x1e40/admin,")
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode, body)
	require.NoError(t, c.raw(atk11Request(addr, "GET", q, h, "")))
	f.next(t, 10*time.Second, atk14IsGet)
	f.gets <- atk14Answer(`40{"sid":"R1"}` + "\x1e" + `40/admin,{"sid":"A1"}`)
	res, body, err = c.read("GET", 10*time.Second)
	require.NoError(t, err)
	require.Contains(t, body, `40/admin,{"sid":"A1"}`)
	atk11Waiting(t, e, 0)

	require.NoError(t, c.raw(atk11Request(addr, "GET", q, h, "")))
	get = f.next(t, 10*time.Second, atk14IsGet)
	atk11Waiting(t, e, 1)
	if sleep {
		atk15Asleep(t, pid, c.c, p.c)
		assert.GreaterOrEqual(t, len(atk15Sleeping(t, pid)), 3, "the GET's worker connection asleep too")
	}
	atk10Reload(t, e, atk14Config(addr, f.addr, "namespace /admin role admin"))
	f.gets <- atk14Answer(`42/admin,["secret",{"payroll":1}]`)
	post = f.next(t, 10*time.Second, func(r *atk14Req) bool {
		return r.method == http.MethodPost && strings.Contains(r.body, "41/admin")
	})
	res, answer, err = c.read("GET", 10*time.Second)
	require.NoError(t, err)
	assert.Equal(t, 200, res.StatusCode)
	// The session goes on in "/": its next GET (on a new connection if
	// the answer closed this one) gets the worker's event.
	g := c
	if res.Close {
		g = atk11Dial(t, addr)
	}
	require.NoError(t, g.raw(atk11Request(addr, "GET", q, h, "")))
	f.next(t, 10*time.Second, atk14IsGet)
	f.gets <- atk14Answer(`42["hello",{"n":1}]`)
	res, next, err = g.read("GET", 10*time.Second)
	require.NoError(t, err, "the session's next GET after /admin was withdrawn")
	assert.Equal(t, 200, res.StatusCode, next)
	atk11Waiting(t, e, 0)
	assert.Empty(t, atk16LogProblems(e), "the edge's log")
	return get, post, answer, next
}

// A user connected to /admin as "user" loses it (a reload with
// `namespace /admin role admin`) while their GET and its worker
// connection sleep; the worker then answers the GET with an /admin
// event. Expected, as when the GET is awake: the client gets 41/admin,
// never the event; the edge's DISCONNECT POST to the worker carries the
// parked GET's identity (Cookie, X-Forwarded-*, X-Auth-*); the session
// goes on in "/". Both an ordinary user id and one with a control byte
// (which flask_session refuses since 980ee9f: the session is anonymous).
func TestAttack16WithdrawWhileTheGetSleeps(t *testing.T) {
	login := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "login", SecretKey: advSecret})
	for _, user := range []string{"uma", "uma\x7f"} {
		t.Run(strconv.Quote(user), func(t *testing.T) {
			cookie := testenv.Login(t, login.URL(), user, "user")
			get, post, answer, next := atk16Withdraw(t, cookie, true)
			require.Equal(t, atk14Carried(user), get.header.Values("X-Auth-User-Id"), "the parked GET: %q", get.head)
			atk14SameIdentity(t, get, post)
			assert.Contains(t, answer, "41/admin,", "the sleeping GET's answer")
			assert.NotContains(t, answer, "payroll", "the /admin event reached a user whose /admin was withdrawn")
			assert.Contains(t, next, `42["hello",{"n":1}]`, "the session in /")
		})
	}
}

// atk16Drain drains the only worker (drain_timeout 1s) while a GET
// waits, asleep or not; it returns the GET's answer.
func atk16Drain(t *testing.T, sleep bool) (status int, body string, hdr http.Header) {
	s := atk11Start(t, "drain_timeout 1s")
	pid := atk15Pid(t, s.addr)
	sid := atk11OpenOn(t, s.edge, s.addr, "")
	g := atk11ParkGet(t, s, sid, "HTTP/1.1", 1)
	if sleep {
		atk15Asleep(t, pid, g.c)
		assert.GreaterOrEqual(t, len(atk15Sleeping(t, pid)), 2, "the GET's worker connection asleep too")
	}
	st, b := adminDo(t, s.edge, http.MethodPost, "/socketio/upstreams/"+s.worker.Addr+"/drain")
	require.Less(t, st, 300, b)
	res, body, err := g.read("GET", 10*time.Second)
	require.NoError(t, err, "the parked GET of a drained worker (asleep: %v)", sleep)
	atk11Waiting(t, s.edge, 0)
	assert.Empty(t, atk16LogProblems(s.edge), "the edge's log")
	return res.StatusCode, body, res.Header
}

// A worker drained past its drain_timeout while a session's GET sleeps
// at it: the GET is ended early (claim). Expected: the same answer as
// an awake GET gets (200, the close packet "1", the site's CORS
// headers).
func TestAttack16DrainEndsASleepingGetAsAnAwakeOne(t *testing.T) {
	as, ab, ah := atk16Drain(t, false)
	ss, sb, sh := atk16Drain(t, true)
	assert.Equal(t, 200, as, ab)
	assert.Equal(t, "1", ab)
	assert.Equal(t, as, ss, "status: awake %d, asleep %d", as, ss)
	assert.Equal(t, ab, sb, "body")
	assert.Equal(t, ah.Values("Access-Control-Allow-Origin"), sh.Values("Access-Control-Allow-Origin"))
	assert.Equal(t, ah.Get("Content-Type"), sh.Get("Content-Type"))
}

// atk16Rate closes a session for its message rate (5/m) with messages
// that do not answer its GET (an event without a handler, no ack) while
// the GET waits, asleep or not; it returns the GET's answer.
func atk16Rate(t *testing.T, sleep bool) (status int, body string, hdr http.Header) {
	s := atk11Start(t, "rate_limit messages 5/m")
	pid := atk15Pid(t, s.addr)
	sid := atk11OpenOn(t, s.edge, s.addr, "")
	q := atk11Path + "&sid=" + sid
	g := atk11ParkGet(t, s, sid, "HTTP/1.1", 1)
	p := atk11Dial(t, s.addr)
	if sleep {
		atk15Asleep(t, pid, g.c)
	}
	last := 0
	for i := range 20 {
		if sleep && i > 0 {
			atk15Asleep(t, pid, g.c, p.c)
		}
		res, body, err := p.do("POST", q, map[string]string{"Origin": advAllowed}, fmt.Sprintf(`42["nohandler",%d]`, i))
		require.NoError(t, err)
		last = res.StatusCode
		if last == 429 {
			break
		}
		require.Equal(t, 200, res.StatusCode, body)
	}
	require.Equal(t, 429, last, "the message rate was never crossed")
	res, body, err := g.read("GET", 10*time.Second)
	require.NoError(t, err, "the parked GET of a session closed for its rate (asleep: %v)", sleep)
	atk11Waiting(t, s.edge, 0)
	assert.Eventually(t, func() bool { return atk12Parked(t, s.edge, "waiting") == 0 }, 5*time.Second, 20*time.Millisecond)
	assert.Empty(t, atk16LogProblems(s.edge), "the edge's log")
	return res.StatusCode, body, res.Header
}

// A session closed for its message rate (rate_limit messages) while its
// GET sleeps at the worker (ended early by claim). Expected: the same
// answer as an awake GET gets (429, Retry-After, the site's CORS
// headers).
func TestAttack16MessageRateCloseEndsASleepingGetAsAnAwakeOne(t *testing.T) {
	as, ab, ah := atk16Rate(t, false)
	ss, sb, sh := atk16Rate(t, true)
	assert.Equal(t, 429, as, ab)
	assert.Equal(t, as, ss, "status: awake %d (%q), asleep %d (%q)", as, ab, ss, sb)
	assert.Equal(t, ab, sb, "body")
	assert.NotEmpty(t, sh.Get("Retry-After"))
	assert.Equal(t, ah.Values("Access-Control-Allow-Origin"), sh.Values("Access-Control-Allow-Origin"))
}

// A kept connection whose requests went once through the keeper's
// net/http server: two POSTs pipelined on the session's kept connection
// (the second read past the first, so replayed to net/http), and a GET
// whose head arrives in two segments (declined by h1serve). Expected:
// every answer right, and afterwards both connections go back to sleep,
// as any parked connection. FAILED before replayed (the connection came
// back from net/http's Hijack wrapped, which park cannot watch, and was
// served by net/http, awake, for the rest of its life: attack16's
// broadcast test saw it about one run in three).
func TestAttack16ConnectionsReplayedToNetHTTPSleepAgain(t *testing.T) {
	s := atk15Start(t, map[string]string{"PING_INTERVAL": "60", "PING_TIMEOUT": "60"}, "")
	sess := atk16OpenMany(t, s.addr, "", 1, 1)[0]
	atk16Asleep(t, s.pid, []*atk16Session{sess}, "after opening")
	q := "&sid=" + sess.sid
	ino := atk15Inodes(t, sess.post.c)[0]

	// Two POSTs in one write, then their answers.
	req := func(body string) string {
		return "POST " + atk11Path + q + " HTTP/1.1\r\nHost: " + s.addr +
			"\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	}
	_, err := io.WriteString(sess.post.c, req(`421["echo","p1"]`)+req(`422["echo","p2"]`))
	require.NoError(t, err)
	for i := range 2 {
		code, body, err := sess.post.read(10 * time.Second)
		require.NoError(t, err, "pipelined POST %d", i+1)
		require.Equal(t, 200, code, body)
	}
	code, body, err := sess.gets.read(10 * time.Second)
	require.NoError(t, err)
	require.Equal(t, 200, code)
	assert.Contains(t, body, `431[{"data":"p1"`)
	if !strings.Contains(body, `432[{"data":"p2"`) {
		code, body2, err := sess.gets.do("GET", q, "")
		require.NoError(t, err)
		require.Equal(t, 200, code)
		assert.Contains(t, body2, `432[{"data":"p2"`, "after %q", body)
	}

	// A GET whose head comes in two writes: h1serve declines a head
	// split across segments only when it cannot wait; the edge must
	// answer it either way, and park the connection after.
	head := "GET " + atk11Path + q + " HTTP/1.1\r\nHost: " + s.addr + "\r\n\r\n"
	_, err = io.WriteString(sess.gets.c, head[:17])
	require.NoError(t, err)
	require.NoError(t, sess.post.send("POST", q, `423["echo","p3"]`))
	_, err = io.WriteString(sess.gets.c, head[17:])
	require.NoError(t, err)
	code, body, err = sess.post.read(10 * time.Second)
	require.NoError(t, err)
	require.Equal(t, 200, code, body)
	code, body, err = sess.gets.read(10 * time.Second)
	require.NoError(t, err)
	require.Equal(t, 200, code)
	assert.Contains(t, body, `433[{"data":"p3"`)
	require.NoError(t, sess.gets.send("GET", q, ""))

	deadline := time.Now().Add(10 * time.Second)
	for !atk15Sleeping(t, s.pid)[ino] {
		require.True(t, time.Now().Before(deadline),
			"the kept connection that served pipelined POSTs is still awake 10 s later (SleepAfter is 250 ms)")
		time.Sleep(50 * time.Millisecond)
	}
	atk16Asleep(t, s.pid, []*atk16Session{sess}, "after the replayed requests")
	assert.Empty(t, atk16LogProblems(s.edge), "the edge's log")
}
