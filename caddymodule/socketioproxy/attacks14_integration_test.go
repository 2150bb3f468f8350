package socketioproxy_test

// Attack session 14: 0315b47, a parked long-poll GET keeps its request to
// the worker as the bytes sent (h1client.Head, sent again as they are on
// ErrSendAgain, parsed back by workerHeader for the edge's own POSTs in
// tellWorker), the site's answer headers flat (flatHeader/siteHeader), a
// light copy of its request, and a lazily made done channel for its
// flight (registry.poll). The oracle is a worker of the test's own that
// records the raw bytes of every request it reads, and the same request
// served by net/http (Connection: close).

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// atk14Req is one request as the fake worker read it.
type atk14Req struct {
	conn   int    // the fake's connection number
	nth    int    // the request's number on its connection, from 1
	head   string // request line and header as received, up to the blank line
	method string
	uri    string
	header http.Header // read leniently: any byte goes
	body   string
	// closed is closed when the edge closed the connection while this
	// GET waited for its answer.
	closed chan struct{}
}

// atk14Fake is an Engine.IO worker of the test's own that parses no
// header strictly and records every request: the handshake opens "S1",
// POSTs are answered "ok", and each GET of the session waits for the
// next function on gets, which answers it (false: the connection ends).
type atk14Fake struct {
	addr    string
	gets    chan func(c net.Conn, r *atk14Req) bool
	arrived chan *atk14Req // every request, as it is read
	stop    chan struct{}
	mu      sync.Mutex
	reqs    []*atk14Req
	close   func()
}

func startAtk14Fake(t *testing.T) *atk14Fake {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f := &atk14Fake{addr: ln.Addr().String(), gets: make(chan func(net.Conn, *atk14Req) bool, 64),
		arrived: make(chan *atk14Req, 4096), stop: make(chan struct{})}
	var mu sync.Mutex
	var open []net.Conn
	var once sync.Once
	var wg sync.WaitGroup
	f.close = func() {
		once.Do(func() {
			close(f.stop)
			ln.Close()
			mu.Lock()
			for _, c := range open {
				c.Close()
			}
			mu.Unlock()
			wg.Wait()
		})
	}
	t.Cleanup(f.close)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 1; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				f.serve(c, n)
			}()
		}
	}()
	return f
}

// readReq reads one request: the head up to the blank line, split on
// CRLF, and a body of its Content-Length.
func atk14ReadReq(br *bufio.Reader) (*atk14Req, error) {
	var head strings.Builder
	for {
		line, err := br.ReadString('\n')
		head.WriteString(line)
		if err != nil {
			return nil, err
		}
		if line == "\r\n" {
			break
		}
	}
	r := &atk14Req{head: head.String(), header: http.Header{}, closed: make(chan struct{})}
	lines := strings.Split(strings.TrimSuffix(r.head, "\r\n\r\n"), "\r\n")
	parts := strings.SplitN(lines[0], " ", 3)
	if len(parts) == 3 {
		r.method, r.uri = parts[0], parts[1]
	}
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, ":")
		r.header[http.CanonicalHeaderKey(k)] = append(r.header[http.CanonicalHeaderKey(k)], strings.Trim(v, " \t"))
	}
	if n, err := strconv.Atoi(r.header.Get("Content-Length")); err == nil && n > 0 {
		b := make([]byte, n)
		if _, err := io.ReadFull(br, b); err != nil {
			return nil, err
		}
		r.body = string(b)
	}
	return r, nil
}

func (f *atk14Fake) serve(c net.Conn, n int) {
	br := bufio.NewReader(c)
	for nth := 1; ; nth++ {
		r, err := atk14ReadReq(br)
		if err != nil {
			return
		}
		r.conn, r.nth = n, nth
		f.mu.Lock()
		f.reqs = append(f.reqs, r)
		f.mu.Unlock()
		select {
		case f.arrived <- r:
		default:
		}
		switch {
		case !strings.Contains(r.uri, "sid="):
			body := `0{"sid":"S1","upgrades":[],"pingInterval":25000,"pingTimeout":20000}`
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		case r.method == http.MethodGet:
			if !f.await(c, br, r) {
				return
			}
		default:
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Length: 2\r\n\r\nok")
		}
	}
}

// await waits for the GET's answer, watching its connection: an edge
// that closes it (its client gone) ends the wait.
func (f *atk14Fake) await(c net.Conn, br *bufio.Reader, r *atk14Req) bool {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case fn := <-f.gets:
			return fn(c, r)
		case <-f.stop:
			return false
		case <-tick.C:
			_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
			_, err := br.Peek(1)
			_ = c.SetReadDeadline(time.Time{})
			var ne net.Error
			if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
				close(r.closed)
				return false
			}
		}
	}
}

// requests are the requests read so far that match keep.
func (f *atk14Fake) requests(keep func(*atk14Req) bool) []*atk14Req {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*atk14Req
	for _, r := range f.reqs {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// next is the next request read that matches keep, within d.
func (f *atk14Fake) next(t *testing.T, d time.Duration, keep func(*atk14Req) bool) *atk14Req {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case r := <-f.arrived:
			if keep(r) {
				return r
			}
		case <-deadline:
			t.Fatalf("the worker got no such request within %v", d)
			return nil
		}
	}
}

func atk14IsGet(r *atk14Req) bool {
	return r.method == http.MethodGet && strings.Contains(r.uri, "sid=")
}

// atk14Answer answers a GET with body, the connection kept.
func atk14Answer(body string) func(net.Conn, *atk14Req) bool {
	return func(c net.Conn, _ *atk14Req) bool {
		_, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		return err == nil
	}
}

// atk14Edge is an edge with edge_cors, flask_session and socketio_proxy
// to upstream; rule is more lines for socketio_proxy.
func atk14Config(addr, upstream, rule string) testenv.EdgeConfig {
	return testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	edge_cors {
		origins %[3]s
		credentials
	}
	flask_session {
		secret_key %[4]s
	}
	socketio_proxy {
		to %[2]s
		%[5]s
	}
}
`, addr, upstream, advAllowed, advSecret, rule))
}

// atk14Spoof are the headers a client sends to pass for a proxy or a
// verified user.
var atk14Spoof = map[string]string{
	"X-Forwarded-For":    "6.6.6.6",
	"X-Forwarded-Host":   "evil.example",
	"X-Forwarded-Proto":  "https",
	"X-Forwarded-Port":   "4443",
	"X-Forwarded-Prefix": "/evil",
	"Forwarded":          "for=6.6.6.6;host=evil.example;proto=https",
	"X-Auth-User-Id":     "root",
	"X-Auth-Role":        "admin",
	"X_Auth_Role":        "admin",
	"x-auth-user_id":     "root",
}

// atk14CheckHead checks what the worker read of a GET that came through
// the edge from a client that sent atk14Spoof: the edge's own forwarding
// and identity headers only, the client's cookie, the worker's sid.
func atk14CheckHead(t *testing.T, r *atk14Req, edgeAddr, cookie, user, role string) {
	t.Helper()
	h := r.header
	assert.Contains(t, r.uri, "sid=S1", "the worker's sid in the URI: %q", r.head)
	assert.Equal(t, []string{edgeAddr}, h.Values("Host"), "Host")
	assert.Equal(t, []string{"127.0.0.1"}, h.Values("X-Forwarded-For"), "X-Forwarded-For: %q", r.head)
	assert.Equal(t, []string{edgeAddr}, h.Values("X-Forwarded-Host"), "X-Forwarded-Host: %q", r.head)
	assert.Equal(t, []string{"http"}, h.Values("X-Forwarded-Proto"), "X-Forwarded-Proto: %q", r.head)
	for _, k := range []string{"X-Forwarded-Port", "X-Forwarded-Prefix", "Forwarded", "X_auth_role", "X-Auth-User_id"} {
		assert.Empty(t, h.Values(k), "%s from the client reached the worker: %q", k, r.head)
	}
	assert.Equal(t, []string{user}, h.Values("X-Auth-User-Id"), "X-Auth-User-Id: %q", r.head)
	assert.Equal(t, []string{role}, h.Values("X-Auth-Role"), "X-Auth-Role: %q", r.head)
	assert.Equal(t, []string{cookie}, h.Values("Cookie"), "Cookie: %q", r.head)
}

// A parked GET whose kept worker connection the worker closes as the GET
// comes (it reads the GET, then closes without answering: ErrSendAgain)
// is sent again on a new connection. The client sent spoofed forwarding
// and identity headers. Expected: the GET sent again is byte for byte the
// first; both carry the worker's sid, the edge's X-Forwarded-* (not the
// client's), the verified identity, the cookie; nothing else reaches the
// worker twice; the client gets the answer and the session goes on. HOLDS
// at 0315b47.
func TestAttack14ResentGetIsTheSameBytes(t *testing.T) {
	login := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "login", SecretKey: advSecret})
	uma := testenv.Login(t, login.URL(), "uma", "user")
	f := startAtk14Fake(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	e := testenv.StartEdge(t, atk14Config(addr, f.addr, ""), addr)
	h := map[string]string{"Cookie": uma, "Origin": advAllowed}
	for k, v := range atk14Spoof {
		h[k] = v
	}
	c := atk11Dial(t, addr)
	res, body, err := c.do("GET", atk11Path, h, "")
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode, body)
	sid := sidPattern.FindStringSubmatch(body)[1]
	q := atk11Path + "&sid=" + sid
	res, body, err = c.do("POST", q, h, "40")
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode, body)

	var first, again *atk14Req
	for try := 0; try < 5 && again == nil; try++ {
		require.NoError(t, c.raw(atk11Request(addr, "GET", q, h, "")))
		r := f.next(t, 10*time.Second, atk14IsGet)
		if r.nth == 1 {
			// A new connection: nothing to send again on. Answered,
			// it is kept for the next try.
			f.gets <- atk14Answer("6")
			res, body, err = c.read("GET", 10*time.Second)
			require.NoError(t, err)
			require.Equal(t, "6", body)
			atk11Waiting(t, e, 0)
			continue
		}
		first = r
		f.gets <- func(conn net.Conn, _ *atk14Req) bool { return false } // read, then closed
		again = f.next(t, 10*time.Second, atk14IsGet)
		f.gets <- atk14Answer(`42["n",1]`)
		res, body, err = c.read("GET", 10*time.Second)
		require.NoError(t, err, "the GET sent again")
		assert.Equal(t, 200, res.StatusCode)
		assert.Equal(t, `42["n",1]`, body)
	}
	require.NotNil(t, again, "no GET went on a kept worker connection in 5 tries")
	assert.Equal(t, first.head, again.head, "the GET sent again differs from the first")
	atk14CheckHead(t, again, addr, uma, "uma", "user")
	assert.Len(t, f.requests(func(r *atk14Req) bool { return r.method == http.MethodPost }), 1,
		"the session's one POST reached the worker once")

	// The session goes on.
	atk11Waiting(t, e, 0)
	require.NoError(t, c.raw(atk11Request(addr, "GET", q, h, "")))
	r := f.next(t, 10*time.Second, atk14IsGet)
	atk14CheckHead(t, r, addr, uma, "uma", "user")
	f.gets <- atk14Answer("6")
	res, body, err = c.read("GET", 10*time.Second)
	require.NoError(t, err)
	assert.Equal(t, "6", body)
}

// atk14Withdraw parks a GET of a session connected to /admin (as user,
// whose cookie is given), then reloads the edge with `namespace /admin
// role admin`, and has the worker answer the GET with an /admin event:
// the edge withdraws /admin, drops the event and POSTs the worker the
// DISCONNECT itself (tellWorker, its header rebuilt from the parked GET's
// bytes). It returns the parked GET and the edge's POST as the worker
// read them, and the client's answer.
func atk14Withdraw(t *testing.T, user, cookie string) (get, post *atk14Req, answer string) {
	f := startAtk14Fake(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	e := testenv.StartEdge(t, atk14Config(addr, f.addr, ""), addr)
	h := map[string]string{"Cookie": cookie, "Origin": advAllowed}
	for k, v := range atk14Spoof {
		h[k] = v
	}
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
	connected := `40{"sid":"R1"}` + "\x1e" + `40/admin,{"sid":"A1"}`
	f.gets <- atk14Answer(connected)
	res, body, err = c.read("GET", 10*time.Second)
	require.NoError(t, err)
	require.Contains(t, body, `40/admin,{"sid":"A1"}`)
	atk11Waiting(t, e, 0)

	require.NoError(t, c.raw(atk11Request(addr, "GET", q, h, "")))
	get = f.next(t, 10*time.Second, atk14IsGet)
	atk11Waiting(t, e, 1)
	atk10Reload(t, e, atk14Config(addr, f.addr, "namespace /admin role admin"))
	f.gets <- atk14Answer(`42/admin,["secret",{"payroll":1}]`)
	post = f.next(t, 10*time.Second, func(r *atk14Req) bool {
		return r.method == http.MethodPost && strings.Contains(r.body, "41/admin")
	})
	res, answer, err = c.read("GET", 10*time.Second)
	require.NoError(t, err)
	assert.Equal(t, 200, res.StatusCode)
	return get, post, answer
}

// atk14Carried is the X-Auth-User-Id a worker gets for user: none when
// the id has a control byte, which flask_session refuses.
func atk14Carried(user string) []string {
	if strings.IndexFunc(user, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return nil
	}
	return []string{user}
}

// atk14SameIdentity checks that the edge's own POST carried what the
// parked GET did: the worker's sid, Host, the forwarding and identity
// headers, the cookie, the Origin.
func atk14SameIdentity(t *testing.T, get, post *atk14Req) {
	t.Helper()
	gu, _, _ := strings.Cut(get.uri, "&t=")
	pu, _, _ := strings.Cut(post.uri, "&t=")
	assert.Equal(t, gu, pu, "the POST's target")
	var lost []string
	for _, k := range []string{"Host", "Cookie", "Origin", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Auth-User-Id", "X-Auth-Role"} {
		if g, p := get.header.Values(k), post.header.Values(k); !slices.Equal(g, p) {
			lost = append(lost, fmt.Sprintf("%s: %q on the GET, %q on the POST", k, g, p))
		}
	}
	assert.Empty(t, lost, "the edge's own POST does not carry the parked GET's header; the worker read the GET\n%q\nand the POST\n%q", get.head, post.head)
}

// A role withdrawn (here by a reload that restricts /admin) while a GET
// is parked: the DISCONNECT the edge POSTs must carry the identity the
// worker saw on the GET (tellWorker rebuilds its header from the GET's
// bytes), and the client gets its 41/admin, never the /admin event. HOLDS
// at 0315b47.
func TestAttack14WithdrawPostCarriesTheParkedGetsIdentity(t *testing.T) {
	login := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "login", SecretKey: advSecret})
	uma := testenv.Login(t, login.URL(), "uma", "user")
	get, post, answer := atk14Withdraw(t, "uma", uma)
	atk14CheckHead(t, get, get.header.Get("Host"), uma, "uma", "user")
	atk14SameIdentity(t, get, post)
	assert.Contains(t, answer, "41/admin,")
	assert.NotContains(t, answer, "payroll")
}

// The same, for a user whose id holds a byte a header value may not
// (DEL, 0x7f: /login takes any name, Flask signs it). flask_session
// passed it on in X-Auth-User-Id, h1client wrote it as it is, the GET's
// head then did not parse back (textproto refuses the byte), and
// workerHeader gave an empty header: the edge's own POST to the worker
// went with no Cookie, no X-Forwarded-*, no identity (fixed in 0315b47).
// Since 980ee9f flask_session refuses such an identity (the session is
// anonymous, the log says why). Expected: no X-Auth-User-Id reaches the
// worker, and the POST carries the parked GET's headers.
func TestAttack14WithdrawPostOfAUserIdWithAControlByte(t *testing.T) {
	login := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "login", SecretKey: advSecret})
	user := "uma\x7f"
	cookie := testenv.Login(t, login.URL(), user, "user")
	get, post, answer := atk14Withdraw(t, user, cookie)
	require.Equal(t, atk14Carried(user), get.header.Values("X-Auth-User-Id"), "the parked GET: %q", get.head)
	atk14SameIdentity(t, get, post)
	assert.Contains(t, answer, "41/admin,")
	assert.NotContains(t, answer, "payroll")
}

// A drain of the session's worker through the admin API, past its
// drain_timeout, while its GET is parked: the GET is ended with the close
// packet and the edge POSTs the close packet to the worker itself
// (answerPoll's cut-off path, tellWorker with the parked GET's header).
// Expected: that POST carries the GET's identity and target, for an
// ordinary user id, one with a byte over 0x7f (UTF-8 in the header, as
// obs-text), and one with a control byte (0x01; FAILED at 0315b47, as
// above, and refused by flask_session since 980ee9f).
func TestAttack14DrainClosePostCarriesTheParkedGetsIdentity(t *testing.T) {
	login := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "login", SecretKey: advSecret})
	for _, user := range []string{"uma", "umä", "uma\x01"} {
		t.Run(strconv.Quote(user), func(t *testing.T) {
			cookie := testenv.Login(t, login.URL(), user, "user")
			f := startAtk14Fake(t)
			addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
			e := testenv.StartEdge(t, atk14Config(addr, f.addr, "drain_timeout 1s"), addr)
			h := map[string]string{"Cookie": cookie, "Origin": advAllowed}
			c := atk11Dial(t, addr)
			res, body, err := c.do("GET", atk11Path, h, "")
			require.NoError(t, err)
			require.Equal(t, 200, res.StatusCode, body)
			q := atk11Path + "&sid=" + sidPattern.FindStringSubmatch(body)[1]
			require.NoError(t, c.raw(atk11Request(addr, "GET", q, h, "")))
			get := f.next(t, 10*time.Second, atk14IsGet)
			atk11Waiting(t, e, 1)
			status, body := adminDo(t, e, http.MethodPost, "/socketio/upstreams/"+f.addr+"/drain")
			require.Less(t, status, 300, body)
			res, body, err = c.read("GET", 10*time.Second)
			require.NoError(t, err)
			assert.Equal(t, "1", body, "the parked GET's answer")
			post := f.next(t, 10*time.Second, func(r *atk14Req) bool { return r.method == http.MethodPost })
			assert.Equal(t, "1", post.body)
			require.Equal(t, atk14Carried(user), get.header.Values("X-Auth-User-Id"), "the parked GET: %q", get.head)
			atk14SameIdentity(t, get, post)
		})
	}
}

// atk14HeaderDump is a response's header without what differs between a
// kept and a closed connection, for comparison.
func atk14HeaderDump(res *http.Response) string {
	h := res.Header.Clone()
	for _, k := range []string{"Date", "Connection", "Content-Length", "Keep-Alive"} {
		h.Del(k)
	}
	var b bytes.Buffer
	_ = h.Write(&b)
	return b.String()
}

// The site's headers on a parked GET's answer (kept flat while it waits,
// rebuilt as it is written) against the same GET served by net/http
// (Connection: close): a multi-valued Vary (the site's `header` adds to
// edge_cors's), an allowed Origin, a second allowed one, none, a foreign
// one. Expected: the same header, one Access-Control-Allow-Origin for an
// allowed Origin, the answer's body alike. HOLDS
// at 0315b47 (Vary, X-Site and the Access-Control-* alike).
func TestAttack14ParkedAnswerHasTheSiteHeadersOfNetHTTPs(t *testing.T) {
	worker := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1", SecretKey: advSecret})
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	const second = "https://second.example"
	e := testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	header +Vary Cookie
	header +Vary Accept-Language
	header X-Site one
	header +X-Site two
	edge_cors {
		origins %[3]s %[4]s
		credentials
	}
	socketio_proxy {
		to %[2]s
	}
}
`, addr, worker.Addr, advAllowed, second)), addr)
	sid := atk11OpenOn(t, e, addr, "")
	q := atk11Path + "&sid=" + sid
	answer := func(origin string, closeIt bool) (*http.Response, string) {
		h := map[string]string{}
		if origin != "" {
			h["Origin"] = origin
		}
		if closeIt {
			h["Connection"] = "close"
		}
		c := atk11Dial(t, addr)
		require.NoError(t, c.raw(atk11Request(addr, "GET", q, h, "")))
		// (A foreign Origin is refused before the worker is asked.)
		parked := origin != advForeign
		if parked {
			atk11Waiting(t, e, 1)
			atk11Echo(t, addr, sid, "", 7)
		}
		res, body, err := c.read("GET", 10*time.Second)
		require.NoError(t, err, "origin %q close %v (waiting at the worker: %v)", origin, closeIt, parked)
		atk11Waiting(t, e, 0)
		return res, body
	}
	for _, origin := range []string{advAllowed, second, "", advForeign} {
		pr, pb := answer(origin, false)
		nr, nb := answer(origin, true)
		assert.Equal(t, nr.StatusCode, pr.StatusCode, "origin %q", origin)
		assert.Equal(t, atk14HeaderDump(nr), atk14HeaderDump(pr), "origin %q: net/http's header (want), the parked answer's (got)", origin)
		assert.Equal(t, nb, pb, "origin %q", origin)
		if origin == advAllowed || origin == second {
			assert.Equal(t, []string{origin}, pr.Header.Values("Access-Control-Allow-Origin"), "origin %q", origin)
			assert.Equal(t, []string{"true"}, pr.Header.Values("Access-Control-Allow-Credentials"), "origin %q", origin)
		} else {
			assert.Empty(t, pr.Header.Values("Access-Control-Allow-Origin"), "origin %q", origin)
		}
		t.Logf("origin %q: %d %q\n%s", origin, pr.StatusCode, truncate(pb, 60), atk14HeaderDump(pr))
	}
}

// A GET parked at the worker whose client hangs up, and at once a second
// GET of the session on another connection (a browser that lost its
// keep-alive connection), round after round: the second waits for the
// first to end (the flight's done channel, made lazily by the waiter) or
// is refused at once, never hangs past overlapWait, and never reaches
// the worker while the first is still there. HOLDS
// at 0315b47 (some second GETs refused 400 code 3 when the edge had not
// yet seen the hang-up; none hangs; never two at the worker).
func TestAttack14SecondGetAfterTheFirstsClientLeft(t *testing.T) {
	f := startAtk14Fake(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	e := testenv.StartEdge(t, atk14Config(addr, f.addr, ""), addr)
	c := atk11Dial(t, addr)
	res, body, err := c.do("GET", atk11Path, nil, "")
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode, body)
	q := atk11Path + "&sid=" + sidPattern.FindStringSubmatch(body)[1]
	outcomes := map[string]int{}
	for round := range 40 {
		a := atk11Dial(t, addr)
		require.NoError(t, a.raw(atk11Request(addr, "GET", q, nil, "")))
		first := f.next(t, 10*time.Second, atk14IsGet)
		b := atk11Dial(t, addr)
		get := atk11Request(addr, "GET", q, nil, "")
		if round%2 == 1 {
			// The hang-up and the next GET in the same instant.
			go a.c.Close()
		} else {
			a.c.Close()
		}
		start := time.Now()
		require.NoError(t, b.raw(get))
		arrived := make(chan *atk14Req, 1)
		stopWatch := make(chan struct{})
		go func() {
			select {
			case r := <-f.arrived:
				arrived <- r
			case <-stopWatch:
			}
		}()
		type answer struct {
			res  *http.Response
			body string
			err  error
		}
		got := make(chan answer, 1)
		go func() {
			res, body, err := b.read("GET", 6*time.Second)
			got <- answer{res, body, err}
		}()
		select {
		case r := <-arrived:
			require.True(t, atk14IsGet(r), "round %d: %q", round, r.head)
			select {
			case <-first.closed:
			case <-time.After(time.Second):
				t.Errorf("round %d: a second GET reached the worker while the first was still there", round)
			}
			f.gets <- atk14Answer("6")
			a := <-got
			require.NoError(t, a.err, "round %d", round)
			assert.Equal(t, "6", a.body, "round %d", round)
			outcomes["waited, then sent"]++
			assert.Less(t, time.Since(start), 3*time.Second, "round %d", round)
		case a := <-got:
			close(stopWatch)
			require.NoError(t, a.err, "round %d: the second GET had no answer within 6 s", round)
			assert.Less(t, time.Since(start), 3*time.Second, "round %d: the second GET's refusal", round)
			outcomes[fmt.Sprintf("%d %s", a.res.StatusCode, a.body)]++
			select {
			case <-first.closed:
			case <-time.After(5 * time.Second):
				t.Errorf("round %d: the first GET, whose client left, still at the worker", round)
			}
		}
		b.c.Close()
		atk11Waiting(t, e, 0)
	}
	t.Logf("second GETs: %v", outcomes)
}

// Many GETs parked at once, each with a page request pipelined behind it
// (kept by the edge until the GET's answer is written), a third of the
// clients hanging up, and a reload while they wait. Expected: each
// remaining client gets its GET's ack once, with the site's CORS headers,
// then the page or (the reload) a closed connection, never a hang; nothing
// stays in flight or parked waiting. HOLDS
// at 0315b47 (the pipelined pages are not served: the reload closes the
// connections after the answer; see the test below).
func TestAttack14ManyParkedGetsPipelinedHangUpsAndAReload(t *testing.T) {
	const n = 120
	s := atk11Start(t, "")
	sids := make([]string, n)
	for i := range sids {
		sids[i] = atk11OpenOn(t, nil, s.addr, "")
	}
	atk11Waiting(t, s.edge, 0)
	conns := make([]*atk11Conn, n)
	for i, sid := range sids {
		c := atk11Dial(t, s.addr)
		require.NoError(t, c.raw(atk11Request(s.addr, "GET", atk11Path+"&sid="+sid, map[string]string{"Origin": advAllowed}, "")+
			atk11Request(s.addr, "GET", "/healthz", nil, "")))
		conns[i] = c
	}
	atk11Waiting(t, s.edge, n)
	for i := 0; i < n; i += 3 {
		conns[i].c.Close()
	}
	atk11Waiting(t, s.edge, n-(n+2)/3)
	atk10Reload(t, s.edge, s.config(advAllowed, "drain_timeout 31s"))
	var wg sync.WaitGroup
	for i, sid := range sids {
		if i%3 == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for try := 0; try < 20; try++ {
				c, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
				if err != nil {
					continue
				}
				_, _ = io.WriteString(c, atk11Request(s.addr, "POST", atk11Path+"&sid="+sid, nil, fmt.Sprintf(`42%d["echo","many"]`, i)))
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				res, err := http.ReadResponse(bufio.NewReader(c), nil)
				c.Close()
				if err == nil && res.StatusCode == 200 {
					return
				}
			}
		}()
	}
	wg.Wait()
	pages := map[string]int{}
	for i, c := range conns {
		if i%3 == 0 {
			continue
		}
		res, body, err := c.read("GET", 10*time.Second)
		if !assert.NoError(t, err, "GET %d", i) {
			continue
		}
		assert.Equal(t, 200, res.StatusCode, "GET %d", i)
		assert.Contains(t, body, fmt.Sprintf("43%d[", i), "GET %d", i)
		assert.Equal(t, []string{advAllowed}, res.Header.Values("Access-Control-Allow-Origin"), "GET %d", i)
		said := res.Close
		res, body, err = c.read("GET", 10*time.Second)
		var ne net.Error
		switch {
		case err == nil:
			assert.Equal(t, 200, res.StatusCode, "the page behind GET %d", i)
			assert.Contains(t, body, "ok w1", "the page behind GET %d", i)
			pages["served"]++
		case errors.As(err, &ne) && ne.Timeout():
			t.Errorf("the page behind GET %d: neither served nor closed", i)
		default:
			// The reload closes the old config's connections after
			// the answer in flight: the client sends it again.
			pages[fmt.Sprintf("connection closed (the GET's answer said Connection: close: %v)", said)]++
		}
	}
	t.Logf("pages pipelined behind the parked GETs: %v", pages)
	atk11Waiting(t, s.edge, 0)
	assert.Equal(t, float64(0), atk12Parked(t, s.edge, "waiting"), "parked waiting")
}

// A GET parked across a reload is answered by the edge after the reload
// stopped its keeper: the connection is then closed (keeper.keep, or the
// stopped keeper's server for bytes pipelined behind the GET), but the
// answer does not say so. net/http, and h1serve since attacks13, say
// "Connection: close" on the last answer of a connection they close
// after it; a client that sends its next request (or has pipelined one)
// meets a reset instead. Not from 0315b47; low severity. Expected: the
// answer says Connection: close, or the connection serves on. FAILS at
// 0315b47 (and before it).
func TestAttack14ParkedAnswerAfterAReloadSaysItCloses(t *testing.T) {
	s := atk11Start(t, "")
	sid := atk11OpenOn(t, s.edge, s.addr, "")
	for _, pipelined := range []bool{false, true} {
		c := atk11Dial(t, s.addr)
		get := atk11Request(s.addr, "GET", atk11Path+"&sid="+sid, map[string]string{"Origin": advAllowed}, "")
		if pipelined {
			get += atk11Request(s.addr, "GET", "/healthz", nil, "")
		}
		require.NoError(t, c.raw(get))
		atk11Waiting(t, s.edge, 1)
		atk10Reload(t, s.edge, s.config(advAllowed, fmt.Sprintf("drain_timeout %ds", 40+len(get)%7)))
		atk11Echo(t, s.addr, sid, "", 5)
		res, body, err := c.read("GET", 10*time.Second)
		require.NoError(t, err)
		require.Contains(t, body, "435[")
		said := res.Close
		next := ""
		if !pipelined {
			next = atk11Request(s.addr, "GET", "/healthz", nil, "")
			_ = c.raw(next)
		}
		res, body, err = c.read("GET", 5*time.Second)
		if err == nil {
			assert.Contains(t, body, "ok w1")
			continue
		}
		assert.True(t, said, "pipelined %v: the parked GET's answer after a reload did not say Connection: close, and the connection then closed (%v)", pipelined, err)
		atk11Waiting(t, s.edge, 0)
	}
}
