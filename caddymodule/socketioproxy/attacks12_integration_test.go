package socketioproxy_test

// Second attack session on the parked long-polling connections
// (pollpark.go, keep.go, internal/park, internal/h1client Send/Receive):
// pipelining behind a parked GET (readClient), races around finish,
// session ownership, the worker's odd answers, the keeper serving
// connection after connection, and the parked metrics.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// atk12Quiet reports whether nothing comes on c within d (no answer, no
// close).
func atk12Quiet(c *atk11Conn, d time.Duration) bool {
	_ = c.c.SetReadDeadline(time.Now().Add(d))
	_, err := c.br.Peek(1)
	_ = c.c.SetReadDeadline(time.Time{})
	if err == nil {
		return false
	}
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// atk12Parked reads caddy_socketio_parked_connections{state=...}.
func atk12Parked(t *testing.T, e *testenv.Edge, state string) float64 {
	return metric(t, e, `caddy_socketio_parked_connections{state="`+state+`"}`)
}

// Requests pipelined behind a parked GET, in the same segment: once the
// GET is answered they are served once each, in order, each through the
// site's checks (edge_cors refuses a foreign Origin, a page gets one set
// of CORS headers), and a GET of the session among them parks again and
// is answered in its turn. HOLDS at HEAD.
func TestAttack12PipelinedBehindAParkedGetServedInOrder(t *testing.T) {
	s := atk11Start(t, "")
	sid := atk11OpenOn(t, s.edge, s.addr, "")
	q := atk11Path + "&sid=" + sid
	ok := map[string]string{"Origin": advAllowed}
	pipe := atk11Request(s.addr, "GET", q, ok, "") +
		atk11Request(s.addr, "POST", q, map[string]string{"Origin": advForeign}, `42["echo","foreign"]`) +
		atk11Request(s.addr, "GET", "/healthz", ok, "") +
		atk11Request(s.addr, "POST", q, ok, `42["echo","pipelined"]`) +
		atk11Request(s.addr, "GET", q, ok, "")
	c := atk11Dial(t, s.addr)
	require.NoError(t, c.raw(pipe))
	atk11Waiting(t, s.edge, 1)
	// Nothing pipelined is served before the GET's answer.
	assert.True(t, atk12Quiet(c, 300*time.Millisecond), "a pipelined request was answered before the parked GET")
	atk11Echo(t, s.addr, sid, "", 1)

	res, body, err := c.read("GET", 10*time.Second)
	require.NoError(t, err, "the parked GET's answer")
	require.Equal(t, 200, res.StatusCode, body)
	assert.Contains(t, body, "431[")
	res, body, err = c.read("POST", 10*time.Second)
	require.NoError(t, err, "the pipelined foreign POST")
	assert.Equal(t, 403, res.StatusCode, "a pipelined POST with a foreign Origin: %s", body)
	res, body, err = c.read("GET", 10*time.Second)
	require.NoError(t, err, "the pipelined page")
	assert.Equal(t, 200, res.StatusCode, body)
	assert.Equal(t, []string{advAllowed}, res.Header.Values("Access-Control-Allow-Origin"), "the pipelined page")
	res, body, err = c.read("POST", 10*time.Second)
	require.NoError(t, err, "the pipelined POST")
	assert.Equal(t, 200, res.StatusCode, body)
	// The pipelined GET: answered with the pipelined echo's ack (it may
	// have been queued at the worker before this GET got there), or it
	// waits parked for the next.
	if atk12Quiet(c, time.Second) {
		atk11Waiting(t, s.edge, 1)
		atk11Echo(t, s.addr, sid, "", 2)
	}
	res, body, err = c.read("GET", 10*time.Second)
	require.NoError(t, err, "the pipelined GET")
	assert.Equal(t, 200, res.StatusCode, body)
	assert.Contains(t, body, "43", body)
	assert.Equal(t, []string{advAllowed}, res.Header.Values("Access-Control-Allow-Origin"))
	// Exactly five answers.
	assert.True(t, atk12Quiet(c, time.Second), "more answers than requests on the connection")
	atk11Waiting(t, s.edge, 0)
}

// A client whose next request follows its GET a moment later (a second
// segment, or one trickled byte by byte: an HTTP/1.1 client may
// pipeline) loses its GET: the parked client connection turns readable,
// which the edge takes for the client leaving: the GET is abandoned
// (its worker exchange aborted: python-engineio then loses what it
// hands the abandoned GET), the connection closed without an answer to
// either request. The same bytes in the GET's own segment are kept and
// served (TestAttack12PipelinedBehindAParkedGetServedInOrder), and
// net/http serves both whatever the timing. Over TLS the same happens
// to a request sent in a TLS record of its own after the GET parked
// (logged by TestAttack12TLSPipelinedBehindAParkedGet). Expected: the
// GET answered, then the pipelined request (or, at the least, the GET
// answered and the connection closed).
func TestAttack12PipelinedASegmentLaterDropsTheGet(t *testing.T) {
	s := atk11Start(t, "")
	sid := atk11OpenOn(t, s.edge, s.addr, "")
	c := atk11Dial(t, s.addr)
	require.NoError(t, c.raw(atk11Request(s.addr, "GET", atk11Path+"&sid="+sid, nil, "")))
	atk11Waiting(t, s.edge, 1)
	next := atk11Request(s.addr, "GET", "/healthz", nil, "")
	var werr error
	for i := 0; i < len(next) && werr == nil; i += 8 {
		werr = c.raw(next[i:min(i+8, len(next))])
		time.Sleep(10 * time.Millisecond) // a trickle, not a wait
	}
	stillWaiting := inFlight(t, s.edge) == 1
	atk11Echo(t, s.addr, sid, "", 1)
	res, body, err := c.read("GET", 10*time.Second)
	if !assert.NoError(t, err, "a GET followed a moment later by a pipelined request got no answer "+
		"(the GET was still in flight after the trickle: %v): the edge took the client's next bytes for its leaving "+
		"and closed the connection", stillWaiting) {
		return
	}
	assert.Contains(t, body, "431[")
	res, body, err = c.read("GET", 10*time.Second)
	require.NoError(t, err, "the pipelined page")
	assert.Equal(t, 200, res.StatusCode, body)
}

// More than 64 KiB behind a parked GET (a POST with a large body
// pipelined): the edge stops reading, the GET ends as its client's
// leaving, the connection closes (no hang), and the session's GET slot
// and place in flight are freed at once. HOLDS at HEAD.
func TestAttack12OverSixtyFourKiBBehindAParkedGet(t *testing.T) {
	s := atk11Start(t, "")
	sid := atk11OpenOn(t, s.edge, s.addr, "")
	q := atk11Path + "&sid=" + sid
	big := `42["echo","` + strings.Repeat("x", 70<<10) + `"]`
	c := atk11Dial(t, s.addr)
	require.NoError(t, c.raw(atk11Request(s.addr, "GET", q, nil, "")+atk11Request(s.addr, "POST", q, nil, big)))
	got, closed := c.readAll(5 * time.Second)
	assert.True(t, closed, "the connection with more than 64 KiB behind its parked GET is still open 5 s later; it sent %q", truncate(got, 200))
	atk11Waiting(t, s.edge, 0)
	n := atk11Dial(t, s.addr)
	require.NoError(t, n.raw(atk11Request(s.addr, "GET", q, nil, "")))
	if !atk12Quiet(n, 500*time.Millisecond) {
		res, body, err := n.read("GET", time.Second)
		if err == nil {
			assert.NotEqual(t, 400, res.StatusCode, "the session's next GET was refused: %s", body)
		}
	}
}

// A TLS client pipelining behind its parked GET: the GET is answered,
// then the pipelined request is served or the connection closes: it
// never hangs. HOLDS at HEAD (in one write: the GET answered, then the
// connection closed; in a second record after the GET parked: the GET
// dropped, see TestAttack12PipelinedASegmentLaterDropsTheGet).
func TestAttack12TLSPipelinedBehindAParkedGet(t *testing.T) {
	s, dial := atk11TLSStack(t, "")
	c := dial()
	res, body, err := c.do("GET", atk11Path, nil, "")
	require.NoError(t, err)
	sid := sidPattern.FindStringSubmatch(body)[1]
	res, body, err = c.do("POST", atk11Path+"&sid="+sid, nil, "40")
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode, body)
	res, body, err = c.do("GET", atk11Path+"&sid="+sid, nil, "")
	require.NoError(t, err)
	require.Contains(t, body, "40{")
	atk11Waiting(t, s.edge, 0)

	for _, mode := range []string{"one write", "two writes"} {
		g := dial()
		get := atk11Request(s.addr, "GET", atk11Path+"&sid="+sid, nil, "")
		page := atk11Request(s.addr, "GET", "/healthz", nil, "")
		if mode == "one write" {
			require.NoError(t, g.raw(get+page))
			atk11Waiting(t, s.edge, 1)
		} else {
			require.NoError(t, g.raw(get))
			atk11Waiting(t, s.edge, 1)
			require.NoError(t, g.raw(page)) // a TLS record of its own
		}
		p := dial()
		res, body, err = p.do("POST", atk11Path+"&sid="+sid, nil, `421["echo","tls"]`)
		require.NoError(t, err)
		require.Equal(t, 200, res.StatusCode, body)
		res, body, err = g.read("GET", 10*time.Second)
		if mode == "two writes" && err != nil {
			t.Logf("%s: the GET got no answer (%v): the second record was taken for the client leaving", mode, err)
		} else {
			require.NoError(t, err, "%s: the parked GET's answer", mode)
			assert.Contains(t, body, "431[", mode)
		}
		start := time.Now()
		got, closed := g.readAll(5 * time.Second)
		if !closed {
			// Served and kept: the page's answer must be there.
			assert.Contains(t, got, "ok w1", "%s: the pipelined page got neither an answer nor a close within %v", mode, time.Since(start))
		} else if got != "" {
			assert.Contains(t, got, "ok w1", mode)
		}
		atk11Waiting(t, s.edge, 0)
		// The session goes on.
		g2 := dial()
		require.NoError(t, g2.raw(get))
		atk11Waiting(t, s.edge, 1)
		g2.c.Close()
		atk11Waiting(t, s.edge, 0)
	}
}

// The worker's answer and the client's hang-up at the same moment, many
// times: each round the GET is released (nothing in flight, nothing
// parked waiting), the session's next GET is accepted (never 400, a
// second GET), and once all clients have gone the edge's goroutines and
// parked connections are back to their baseline. HOLDS at HEAD.
func TestAttack12AnswerRacesTheClientsHangUp(t *testing.T) {
	s := atk11Start(t, "")
	atk11OpenOn(t, s.edge, s.addr, "")
	base := atk9Goroutines(t, s.edge.AdminAddr)
	const rounds = 25
	refused := 0
	for i := range rounds {
		sid := atk11OpenOn(t, s.edge, s.addr, "")
		q := atk11Path + "&sid=" + sid
		g := atk11Dial(t, s.addr)
		require.NoError(t, g.raw(atk11Request(s.addr, "GET", q, nil, "")))
		atk11Waiting(t, s.edge, 1)
		p := atk11Dial(t, s.addr)
		post := atk11Request(s.addr, "POST", q, nil, fmt.Sprintf(`42%d["echo","race"]`, i))
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); _ = p.raw(post) }()
		go func() {
			defer wg.Done()
			if i%3 == 0 {
				time.Sleep(time.Duration(i%5) * time.Millisecond) // spread the race
			}
			if i%2 == 0 {
				_ = g.c.(*net.TCPConn).SetLinger(0)
			}
			g.c.Close()
		}()
		wg.Wait()
		res, body, err := p.read("POST", 10*time.Second)
		require.NoError(t, err, "round %d: the POST", i)
		require.Equal(t, 200, res.StatusCode, body)
		atk11Waiting(t, s.edge, 0)
		n := atk11Dial(t, s.addr)
		require.NoError(t, n.raw(atk11Request(s.addr, "GET", q, nil, "")))
		if !atk12Quiet(n, 300*time.Millisecond) {
			res, body, err := n.read("GET", 2*time.Second)
			if err == nil && res.StatusCode == 400 {
				refused++
				t.Logf("round %d: next GET refused: %s", i, body)
			}
		}
		n.c.Close()
		p.c.Close()
		atk11Waiting(t, s.edge, 0)
	}
	assert.Zero(t, refused, "%d of %d sessions' next GETs refused after the answer raced the hang-up", refused, rounds)
	assert.Eventually(t, func() bool { return atk12Parked(t, s.edge, "waiting") == 0 }, 5*time.Second, 20*time.Millisecond,
		"parked_connections{state=waiting} after every GET ended: %v", atk12Parked(t, s.edge, "waiting"))
	var n int
	var dump string
	if !assert.Eventually(t, func() bool {
		n, dump = atk9GoroutineDump(t, s.edge.AdminAddr)
		return n <= base+5
	}, 10*time.Second, 100*time.Millisecond) {
		t.Logf("goroutines %d, baseline %d:\n%s", n, base, dump)
	}
}

// Another user (their own cookie) and the same user from another Origin
// poll a session whose GET waits parked: both are refused, and neither
// disturbs the parked GET, which its owner then gets answered. HOLDS at
// HEAD.
func TestAttack12OtherOwnersCannotTouchAParkedGet(t *testing.T) {
	s := atk11Start(t, "")
	uma := testenv.Login(t, s.worker.URL(), "uma", "user")
	eve := testenv.Login(t, s.worker.URL(), "eve", "user")
	own := map[string]string{"Cookie": uma, "Origin": advAllowed}
	c := atk11Dial(t, s.addr)
	res, body, err := c.do("GET", atk11Path, own, "")
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode, body)
	sid := sidPattern.FindStringSubmatch(body)[1]
	q := atk11Path + "&sid=" + sid
	res, body, err = c.do("POST", q, own, "40")
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode, body)
	res, body, err = c.do("GET", q, own, "")
	require.NoError(t, err)
	require.Contains(t, body, "40{")
	atk11Waiting(t, s.edge, 0)
	require.NoError(t, c.raw(atk11Request(s.addr, "GET", q, own, "")))
	atk11Waiting(t, s.edge, 1)

	for _, h := range []map[string]string{
		{"Cookie": eve, "Origin": advAllowed},
		{"Origin": advAllowed},
		{"Cookie": uma, "Origin": "http://other.allowed.example"},
	} {
		o := atk11Dial(t, s.addr)
		res, body, err := o.do("GET", q, h, "")
		require.NoError(t, err)
		assert.NotEqual(t, 200, res.StatusCode, "another owner's GET (%v) of a session whose GET waits parked: %s", h, body)
		res, body, err = o.do("POST", q, h, `42["echo","intruder"]`)
		require.NoError(t, err)
		assert.NotEqual(t, 200, res.StatusCode, "another owner's POST (%v): %s", h, body)
	}
	assert.Equal(t, float64(1), inFlight(t, s.edge), "the parked GET")
	assert.True(t, atk12Quiet(c, 200*time.Millisecond), "the parked GET was answered by another owner's requests")
	p := atk11Dial(t, s.addr)
	res, body, err = p.do("POST", q, own, `425["echo","owner"]`)
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode, body)
	res, body, err = c.read("GET", 10*time.Second)
	require.NoError(t, err)
	assert.Equal(t, 200, res.StatusCode)
	assert.Contains(t, body, `435[{"data":"owner"`)
	assert.NotContains(t, body, "intruder")
}

// The app ends the session itself (the "kick" event) while its GET waits
// parked: the GET gets the DISCONNECT, the session's next GET is told
// the session is over (400 from the worker, or the close packet), and
// nothing stays in flight or parked waiting. HOLDS at HEAD.
func TestAttack12KickWhileTheGetIsParked(t *testing.T) {
	s := atk11Start(t, "")
	sid := atk11OpenOn(t, s.edge, s.addr, "")
	q := atk11Path + "&sid=" + sid
	g := atk11Dial(t, s.addr)
	require.NoError(t, g.raw(atk11Request(s.addr, "GET", q, nil, "")))
	atk11Waiting(t, s.edge, 1)
	p := atk11Dial(t, s.addr)
	res, body, err := p.do("POST", q, nil, `42["kick"]`)
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode, body)
	res, body, err = g.read("GET", 10*time.Second)
	require.NoError(t, err)
	assert.Equal(t, 200, res.StatusCode)
	assert.Contains(t, body, "41", "the parked GET's answer to a kick")
	// python-socketio keeps the Engine.IO session after a DISCONNECT
	// (the client closes it): the next GET waits parked; the client's
	// close packet then ends it, and the GET is answered, not left
	// hanging.
	require.NoError(t, g.raw(atk11Request(s.addr, "GET", q, nil, "")))
	atk11Waiting(t, s.edge, 1)
	res, body, err = p.do("POST", q, nil, "1")
	require.NoError(t, err)
	assert.Equal(t, 200, res.StatusCode, body)
	res, body, err = g.read("GET", 10*time.Second)
	require.NoError(t, err, "the parked GET of a session its client closed")
	t.Logf("the parked GET after the close: %d %q", res.StatusCode, body)
	atk11Waiting(t, s.edge, 0)
	res, body, err = g.do("GET", q, nil, "")
	require.NoError(t, err)
	assert.Equal(t, 400, res.StatusCode, "a GET of the closed session: %s", body)
	atk11Waiting(t, s.edge, 0)
	assert.Eventually(t, func() bool { return atk12Parked(t, s.edge, "waiting") == 0 }, 5*time.Second, 20*time.Millisecond)
}

// One connection carries a session's GET, parked, then answered, then
// the next GET served by the keeper parks again, a hundred times in a
// row: every round answered, in order, on the same connection, with the
// site's CORS headers, and goroutines do not grow with the rounds. HOLDS
// at HEAD.
func TestAttack12AHundredParksOnOneConnection(t *testing.T) {
	s := atk11Start(t, "")
	sid := atk11OpenOn(t, s.edge, s.addr, "")
	q := atk11Path + "&sid=" + sid
	h := map[string]string{"Origin": advAllowed}
	g := atk11Dial(t, s.addr)
	p := atk11Dial(t, s.addr)
	var base int
	for i := range 100 {
		require.NoError(t, g.raw(atk11Request(s.addr, "GET", q, h, "")))
		atk11Waiting(t, s.edge, 1)
		res, body, err := p.do("POST", q, h, fmt.Sprintf(`42%d["echo","r%d"]`, i, i))
		require.NoError(t, err, "round %d: POST", i)
		require.Equal(t, 200, res.StatusCode, body)
		res, body, err = g.read("GET", 10*time.Second)
		require.NoError(t, err, "round %d: the GET on the kept connection", i)
		require.Equal(t, 200, res.StatusCode, body)
		require.Contains(t, body, fmt.Sprintf(`43%d[{"data":"r%d"`, i, i), "round %d", i)
		require.Equal(t, []string{advAllowed}, res.Header.Values("Access-Control-Allow-Origin"), "round %d", i)
		atk11Waiting(t, s.edge, 0)
		if i == 10 {
			base = atk9Goroutines(t, s.edge.AdminAddr)
		}
	}
	n, dump := atk9GoroutineDump(t, s.edge.AdminAddr)
	if !assert.LessOrEqual(t, n, base+5, "goroutines after 100 rounds on one connection (after 10: %d)", base) {
		t.Log(dump)
	}
}

// The next request on a parked idle connection (a POST's, parked whole)
// is a WebSocket upgrade of a new session, a CONNECT, an h2c upgrade, or
// a head over the server's limit: the upgrade works through the keeper,
// the rest get an error answer or a close, never a hang, and the edge
// serves on. HOLDS at HEAD.
func TestAttack12OddRequestsOnAParkedIdleConnection(t *testing.T) {
	s := atk11Start(t, "")
	sid := atk11OpenOn(t, s.edge, s.addr, "")
	q := atk11Path + "&sid=" + sid
	parked := func() *atk11Conn {
		p := atk11Dial(t, s.addr)
		res, body, err := p.do("POST", q, nil, `42["echo","x"]`)
		require.NoError(t, err)
		require.Equal(t, 200, res.StatusCode, body)
		require.Eventually(t, func() bool { return atk12Parked(t, s.edge, "idle") >= 1 }, 5*time.Second, 10*time.Millisecond,
			"the POST's connection is parked idle")
		return p
	}

	t.Run("websocket", func(t *testing.T) {
		p := parked()
		require.NoError(t, p.raw("GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: "+s.addr+
			"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"+
			"Sec-WebSocket-Version: 13\r\nOrigin: "+advAllowed+"\r\n\r\n"))
		res, err := func() (*http.Response, error) {
			_ = p.c.SetReadDeadline(time.Now().Add(10 * time.Second))
			return http.ReadResponse(p.br, &http.Request{Method: "GET"})
		}()
		require.NoError(t, err, "the upgrade on a kept connection")
		require.Equal(t, 101, res.StatusCode)
		// The Engine.IO open packet comes as a text frame.
		_ = p.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		hdr := make([]byte, 2)
		_, err = io.ReadFull(p.br, hdr)
		require.NoError(t, err)
		assert.Equal(t, byte(0x81), hdr[0], "a text frame")
		payload := make([]byte, hdr[1]&0x7f)
		_, err = io.ReadFull(p.br, payload)
		require.NoError(t, err)
		assert.Contains(t, string(payload), `"sid":"`)
	})
	for _, tc := range []struct{ name, req string }{
		{"CONNECT", "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n"},
		{"h2c", "GET /healthz HTTP/1.1\r\nHost: " + s.addr + "\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"},
		{"PRI", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
		{"huge head", "GET /healthz HTTP/1.1\r\nHost: " + s.addr + "\r\nX-Big: " + strings.Repeat("a", 2<<20) + "\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// What a connection kept by net/http (after a page) gets, to
			// compare.
			f := atk11Dial(t, s.addr)
			fr, fb, ferr := f.do("GET", "/healthz", nil, "")
			require.NoError(t, ferr)
			require.Equal(t, 200, fr.StatusCode, fb)
			_ = f.raw(tc.req)
			fres, _, ferr := f.read("GET", 5*time.Second)
			p := parked()
			_ = p.raw(tc.req)
			res, body, err := p.read("GET", 5*time.Second)
			if err != nil {
				var ne net.Error
				assert.False(t, errors.As(err, &ne) && ne.Timeout(), "%s on a kept connection: neither an answer nor a close within 5 s", tc.name)
				assert.Error(t, ferr, "%s: a connection kept by net/http gets an answer (%v), a parked one %v", tc.name, fres, err)
			} else {
				require.NoError(t, ferr, "%s: a kept connection gets %d, one kept by net/http %v", tc.name, res.StatusCode, ferr)
				assert.Equal(t, fres.StatusCode, res.StatusCode, "%s: a kept connection gets %d %q, one kept by net/http %d", tc.name, res.StatusCode, truncate(body, 100), fres.StatusCode)
				assert.NotEqual(t, 101, res.StatusCode, "%s switched protocols on a kept connection", tc.name)
			}
			// The edge serves on.
			n := atk11Dial(t, s.addr)
			res, body, err = n.do("GET", "/healthz", nil, "")
			require.NoError(t, err)
			assert.Equal(t, 200, res.StatusCode, body)
		})
	}
}

// atk12Fake is an Engine.IO worker of the test's own: a handshake opens
// session "S1", POSTs are answered "ok", and each GET of the session is
// answered by the next function sent on gets, which writes what it
// likes on the worker's connection and reports whether it stays open.
type atk12Fake struct {
	addr  string
	gets  chan func(c net.Conn) bool
	conns chan struct{} // one per accepted connection
	stop  chan struct{}
	close func() // ends it (the test's cleanup does too)
}

func startAtk12Fake(t *testing.T) *atk12Fake {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f := &atk12Fake{addr: ln.Addr().String(), gets: make(chan func(net.Conn) bool, 8), conns: make(chan struct{}, 64)}
	stop := make(chan struct{})
	f.stop = stop
	var mu sync.Mutex
	var open []net.Conn
	var once sync.Once
	f.close = func() {
		once.Do(func() {
			close(stop)
			ln.Close()
			mu.Lock()
			for _, c := range open {
				c.Close()
			}
			mu.Unlock()
		})
	}
	t.Cleanup(f.close)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			select {
			case f.conns <- struct{}{}:
			default:
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					switch {
					case req.URL.Query().Get("sid") == "":
						body := `0{"sid":"S1","upgrades":[],"pingInterval":25000,"pingTimeout":20000}`
						fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
					case req.Method == http.MethodGet:
						var fn func(net.Conn) bool
						select {
						case fn = <-f.gets:
						case <-stop:
							return
						}
						if !fn(c) {
							return
						}
					default:
						_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Length: 2\r\n\r\nok")
					}
				}
			}()
		}
	}()
	return f
}

// atk12Answer is a GET's answer written whole, the connection kept.
func atk12Answer(raw string) func(net.Conn) bool {
	return func(c net.Conn) bool { _, err := io.WriteString(c, raw); return err == nil }
}

// The worker's odd answers to a parked GET, one after the other on one
// session and one client connection: a chunked body, a 100 Continue
// before the answer, a large body, a kept connection the worker closes
// when the next GET comes (the edge sends it again: ErrSendAgain), a
// malformed status line. The client reads each answer whole and right,
// never hangs, and the connection serves on after each good answer.
// HOLDS at HEAD.
func TestAttack12WorkerOddAnswersToAParkedGet(t *testing.T) {
	f := startAtk12Fake(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	e := testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	edge_cors {
		origins %[3]s
		credentials
	}
	socketio_proxy {
		to %[2]s
		max_payload 4MB
	}
}
`, addr, f.addr, advAllowed)), addr)
	h := map[string]string{"Origin": advAllowed}
	c := atk11Dial(t, addr)
	res, body, err := c.do("GET", atk11Path, h, "")
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode, body)
	sid := sidPattern.FindStringSubmatch(body)[1]
	q := atk11Path + "&sid=" + sid
	poll := func(what string, answer func(net.Conn) bool) (*http.Response, string, error) {
		require.NoError(t, c.raw(atk11Request(addr, "GET", q, h, "")))
		atk11Waiting(t, e, 1)
		f.gets <- answer
		res, body, err := c.read("GET", 10*time.Second)
		atk11Waiting(t, e, 0)
		return res, body, err
	}

	res, body, err = poll("chunked", atk12Answer("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"3\r\n42[\r\n9\r\n\"n\",{\"i\":\r\n3\r\n1}]\r\n0\r\n\r\n"))
	require.NoError(t, err, "chunked")
	assert.Equal(t, `42["n",{"i":1}]`, body, "a chunked answer")
	assert.Equal(t, []string{advAllowed}, res.Header.Values("Access-Control-Allow-Origin"))

	res, body, err = poll("100 continue", atk12Answer("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"+
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Length: 1\r\n\r\n6"))
	require.NoError(t, err, "interim answers")
	assert.Equal(t, 200, res.StatusCode)
	assert.Equal(t, "6", body, "the answer after interim ones")

	big := `42["n","` + strings.Repeat("b", 3<<20) + `"]`
	res, body, err = poll("large", atk12Answer(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Length: %d\r\n\r\n%s", len(big), big)))
	require.NoError(t, err, "a large answer")
	assert.Equal(t, 200, res.StatusCode)
	assert.Equal(t, len(big), len(body), "a 3 MiB answer")
	assert.True(t, body == big, "a 3 MiB answer altered")

	// The worker's kept connection closed as the next GET comes: sent
	// again on a new one.
	res, body, err = poll("send again", func(c net.Conn) bool {
		// The next GET, on a new connection, gets the answer.
		f.gets <- atk12Answer("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Length: 1\r\n\r\n6")
		_ = c.(*net.TCPConn).SetLinger(0)
		return false
	})
	require.NoError(t, err, "a GET whose kept worker connection was closed on it")
	assert.Equal(t, 200, res.StatusCode, body)
	assert.Equal(t, "6", body)

	res, body, err = poll("malformed", func(c net.Conn) bool {
		_, _ = io.WriteString(c, "HTTP/1.1 2x0 OK\r\nContent-Length: 1\r\n\r\n6")
		return false
	})
	if err == nil {
		assert.NotEqual(t, 200, res.StatusCode, "a malformed status line relayed as %d %q", res.StatusCode, body)
	}
	// The session goes on, on a connection of its own if that one closed.
	if err != nil {
		c = atk11Dial(t, addr)
	}
	res, body, err = poll("after", atk12Answer("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Length: 1\r\n\r\n6"))
	require.NoError(t, err)
	assert.Equal(t, "6", body)
	f.close()
}

// The worker starts its answer to a parked GET and stalls (an interim
// 100 Continue, or half a head, then nothing: a worker wedged or its
// host gone without a FIN), and the client hangs up. The GET is
// released, but the goroutine reading the worker's answer (answered, in
// h1client Receive, with no deadline) stays, holding the worker's
// connection and a 4 KiB reader, until the worker sends or closes:
// claim finds the worker's connection already handed to answered
// (Unpark false) and leaves the exchange alone, and so do a drain's
// cut-off and a retirement (endWith goes through claim too). Served by
// net/http, the client leaving cancels the request's context, which
// ends the read from the worker. Expected: the client's leaving (or the
// early end) aborts the exchange; nothing of the GET stays.
func TestAttack12WorkerStallsMidAnswerThenTheClientLeaves(t *testing.T) {
	f := startAtk12Fake(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	e := testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	socketio_proxy {
		to %[2]s
	}
}
`, addr, f.addr)), addr)
	c := atk11Dial(t, addr)
	res, body, err := c.do("GET", atk11Path, nil, "")
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode, body)
	sid := sidPattern.FindStringSubmatch(body)[1]
	q := atk11Path + "&sid=" + sid
	// One parked GET first, so that the baseline holds what parking
	// itself starts.
	require.NoError(t, c.raw(atk11Request(addr, "GET", q, nil, "")))
	atk11Waiting(t, e, 1)
	f.gets <- atk12Answer("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n6")
	_, _, err = c.read("GET", 10*time.Second)
	require.NoError(t, err)
	atk11Waiting(t, e, 0)
	base := atk9Goroutines(t, e.AdminAddr)

	const n = 10
	stalled := make(chan net.Conn, n)
	for i := range n {
		g := atk11Dial(t, addr)
		require.NoError(t, g.raw(atk11Request(addr, "GET", q, nil, "")))
		atk11Waiting(t, e, 1)
		f.gets <- func(w net.Conn) bool {
			if i%2 == 0 {
				_, _ = io.WriteString(w, "HTTP/1.1 100 Continue\r\n\r\n")
			} else {
				_, _ = io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Ty")
			}
			stalled <- w
			<-f.stop // the worker's connection stays open, silent
			return false
		}
		w := <-stalled
		_ = w
		// The edge reads the partial answer (the worker's connection
		// turned readable) before the client leaves.
		time.Sleep(50 * time.Millisecond)
		_ = g.c.(*net.TCPConn).SetLinger(0)
		g.c.Close()
		atk11Waiting(t, e, 0)
	}
	var got int
	var dump string
	ok := assert.Eventually(t, func() bool {
		got, dump = atk9GoroutineDump(t, e.AdminAddr)
		return got <= base+3
	}, 5*time.Second, 100*time.Millisecond,
		"%d GETs whose worker stalled mid-answer and whose client left still hold goroutines (reading the worker's answer with no deadline)", n)
	if !ok {
		t.Logf("goroutines %d, baseline %d; h1client frames:\n%s", got, base, atk12Frames(dump, "h1client"))
	}
	f.close()
}

// atk12Frames is the goroutine blocks of a debug=1 dump that mention s.
func atk12Frames(dump, s string) string {
	var out []string
	for _, b := range strings.Split(dump, "\n\n") {
		if strings.Contains(b, s) {
			out = append(out, b)
		}
	}
	return strings.Join(out, "\n\n")
}

// atk12ParkedSessions opens n sessions and parks a GET of each on a
// connection of its own, with the allowed Origin.
func atk12ParkedSessions(t *testing.T, s *atk11Stack, n int) ([]string, []*atk11Conn) {
	t.Helper()
	sids := make([]string, n)
	conns := make([]*atk11Conn, n)
	for i := range n {
		sids[i] = atk11OpenOn(t, s.edge, s.addr, "")
	}
	for i := range n {
		conns[i] = atk11ParkGet(t, s, sids[i], "HTTP/1.1", float64(i+1))
	}
	return sids, conns
}

// atk12OneAnswer reads the one answer a parked GET gets and checks that
// nothing else comes before the connection's next request, which is
// served (or the connection closed); it returns the answer's body.
func atk12OneAnswer(t *testing.T, s *atk11Stack, c *atk11Conn, what string) string {
	t.Helper()
	res, body, err := c.read("GET", 15*time.Second)
	require.NoError(t, err, "%s: the parked GET's answer", what)
	assert.Equal(t, 200, res.StatusCode, "%s: %s", what, body)
	assert.Equal(t, []string{advAllowed}, res.Header.Values("Access-Control-Allow-Origin"), what)
	if !atk12Quiet(c, 200*time.Millisecond) {
		got, closed := c.readAll(time.Second)
		if got != "" {
			t.Errorf("%s: a second answer on the connection of a parked GET: %q", what, truncate(got, 200))
		}
		_ = closed
		return body
	}
	if err := c.raw(atk11Request(s.addr, "GET", "/healthz", map[string]string{"Origin": advAllowed}, "")); err == nil {
		if res, b, err := c.read("GET", 10*time.Second); err == nil {
			assert.Equal(t, 200, res.StatusCode, "%s: the next request on the connection: %s", what, b)
			assert.Contains(t, b, "ok w1", what)
		}
	}
	return body
}

// The worker's answers and config reloads at the same moment, round
// after round: every parked GET gets one answer (its ack, or the close
// packet of an early end), its connection then serves the next request
// or closes, nothing stays in flight or parked waiting, and once the
// clients have gone the parked idle connections and the goroutines are
// back to their baseline. HOLDS at HEAD.
func TestAttack12AnswersRaceReloads(t *testing.T) {
	s := atk11Start(t, "")
	atk11OpenOn(t, s.edge, s.addr, "")
	base := atk9Goroutines(t, s.edge.AdminAddr)
	var all []*atk11Conn
	for round := range 4 {
		sids, conns := atk12ParkedSessions(t, s, 6)
		all = append(all, conns...)
		var wg sync.WaitGroup
		posted := make([]string, len(sids))
		for i, sid := range sids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Duration(i*3) * time.Millisecond) // spread around the reload
				// Until the POST is answered: a reload resets the
				// connections opened at its instant
				// (net.ipv4.tcp_migrate_req 0).
				for try := 0; try < 20; try++ {
					c, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
					if err != nil {
						continue
					}
					_, _ = io.WriteString(c, atk11Request(s.addr, "POST", atk11Path+"&sid="+sid, nil, fmt.Sprintf(`42%d["echo","rl"]`, i)))
					_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
					res, err := http.ReadResponse(bufio.NewReader(c), nil)
					c.Close()
					if err == nil {
						posted[i] = fmt.Sprintf("%d after %d tries", res.StatusCode, try+1)
						return
					}
					posted[i] = err.Error()
				}
			}()
		}
		atk10Reload(t, s.edge, s.config(advAllowed, fmt.Sprintf("drain_timeout %ds", 30+round)))
		wg.Wait()
		for i, c := range conns {
			body := atk12OneAnswer(t, s, c, fmt.Sprintf("round %d GET %d (its echo's POST: %s)", round, i, posted[i]))
			if !strings.Contains(body, fmt.Sprintf("43%d[", i)) {
				t.Logf("round %d GET %d: %q", round, i, truncate(body, 80))
			}
		}
		atk11Waiting(t, s.edge, 0)
		assert.Equal(t, float64(0), atk12Parked(t, s.edge, "waiting"), "round %d: parked waiting", round)
	}
	for _, c := range all {
		c.c.Close()
	}
	assert.Eventually(t, func() bool { return atk12Parked(t, s.edge, "idle") == 0 }, 10*time.Second, 50*time.Millisecond,
		"parked_connections{state=idle} once every client has gone: %v", atk12Parked(t, s.edge, "idle"))
	var n int
	var dump string
	if !assert.Eventually(t, func() bool {
		n, dump = atk9GoroutineDump(t, s.edge.AdminAddr)
		return n <= base+5
	}, 10*time.Second, 100*time.Millisecond) {
		t.Logf("goroutines %d, baseline %d:\n%s", n, base, dump)
	}
}

// The worker's answers around the moment a drain's timeout cuts the
// worker off: every parked GET gets exactly one answer, its ack or the
// close packet "1", never both, never none; nothing stays in flight.
// HOLDS at HEAD.
func TestAttack12AnswersRaceTheDrainCut(t *testing.T) {
	s := atk11Start(t, "drain_timeout 1s")
	sids, conns := atk12ParkedSessions(t, s, 12)
	status, body := adminDo(t, s.edge, http.MethodPost, "/socketio/upstreams/"+s.worker.Addr+"/drain")
	require.Less(t, status, 300, body)
	start := time.Now()
	posted := make([]int, len(sids))
	var wg sync.WaitGroup
	for i, sid := range sids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Until(start.Add(900*time.Millisecond + time.Duration(i*20)*time.Millisecond)))
			c, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
			if err != nil {
				return
			}
			defer c.Close()
			_, _ = io.WriteString(c, atk11Request(s.addr, "POST", atk11Path+"&sid="+sid, nil, fmt.Sprintf(`42%d["echo","dr"]`, i)))
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if res, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
				posted[i] = res.StatusCode
			}
		}()
	}
	wg.Wait()
	acks, closes := 0, 0
	for i, c := range conns {
		body := atk12OneAnswer(t, s, c, fmt.Sprintf("GET %d", i))
		switch {
		case body == "1":
			closes++
		case strings.Contains(body, fmt.Sprintf("43%d[", i)):
			acks++
		case body == "" && posted[i] == 400:
			// The draining edge let the session go on its POST (letGo:
			// the worker told to close it, the POST refused): the
			// worker's answer to the waiting GET is python-engineio's
			// empty one, relayed as it would be unparked.
			closes++
		default:
			t.Errorf("GET %d around the drain's cut got %q", i, truncate(body, 100))
		}
	}
	t.Logf("%d acks, %d closes", acks, closes)
	atk11Waiting(t, s.edge, 0)
	assert.Equal(t, float64(0), atk12Parked(t, s.edge, "waiting"))
}

// A client on a slow link reads a large answer to its parked GET (many
// queued packets, or one near max_payload: at 100 KB/s a 1 MB answer
// takes 10 s). The edge writes a parked GET's answer under one deadline
// for the whole answer (answerWriteTimeout, 10 s from its head), not a
// deadline on progress: past 10 s the answer is cut short and the
// connection closed, though the client has been reading all along. The
// client sees a transport error, reconnects, and (with the same backlog
// waiting) is cut again. Served by net/http under Caddy's defaults (no
// write timeout), the answer streams to the end: the same GET sent with
// "Connection: close" (not parked) reads whole in 17 s (checked by
// hand). Here: 17 MiB read at 1 MiB/s (the kernel's buffers take ~4 MiB
// of it at once). Expected: the whole answer.
func TestAttack12SlowClientLargeAnswerCutAtTenSeconds(t *testing.T) {
	f := startAtk12Fake(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	e := testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	socketio_proxy {
		to %[2]s
		max_payload 64MB
	}
}
`, addr, f.addr)), addr)
	c := atk11Dial(t, addr)
	res, body, err := c.do("GET", atk11Path, nil, "")
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode, body)
	sid := sidPattern.FindStringSubmatch(body)[1]
	require.NoError(t, c.raw(atk11Request(addr, "GET", atk11Path+"&sid="+sid, nil, "")))
	atk11Waiting(t, e, 1)
	const size = 17 << 20
	big := `42["n","` + strings.Repeat("z", size) + `"]`
	f.gets <- atk12Answer(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Length: %d\r\n\r\n%s", len(big), big))
	_ = c.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	res, err = http.ReadResponse(c.br, &http.Request{Method: "GET"})
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode)
	start := time.Now()
	var n int64
	buf := make([]byte, 64<<10)
	tick := time.NewTicker(time.Second / 16) // 16 x 64 KiB a second
	defer tick.Stop()
	for {
		<-tick.C
		m, err := io.ReadFull(res.Body, buf)
		n += int64(m)
		if err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF && n == int64(len(big)) {
				break
			}
			t.Errorf("a parked GET's %d MiB answer, read at 1 MiB/s, was cut after %v and %.1f MiB: %v",
				len(big)>>20, time.Since(start).Round(100*time.Millisecond), float64(n)/(1<<20), err)
			break
		}
	}
	if n == int64(len(big)) {
		t.Logf("read whole in %v", time.Since(start))
	}
	f.close()
}

// A user's session is connected to /admin while no rule guards it; its
// GET waits parked; a reload then restricts /admin to admins, and the
// worker answers the parked GET (held across the reload, under the old
// config's handler) with a data packet of /admin. The answer must
// follow the rules of the moment, as a GET served by net/http does (its
// policy is taken again when the answer comes): the client gets the
// DISCONNECT of /admin, not the packet. HOLDS at HEAD.
func TestAttack12ParkedGetAcrossAReloadThatRestrictsANamespace(t *testing.T) {
	worker := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1", SecretKey: advSecret})
	uma := testenv.Login(t, worker.URL(), "uma", "user")
	f := startAtk12Fake(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	config := func(rule string) testenv.EdgeConfig {
		return testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	flask_session {
		secret_key %[3]s
	}
	socketio_proxy {
		to %[2]s
		%[4]s
	}
}
`, addr, f.addr, advSecret, rule))
	}
	e := testenv.StartEdge(t, config(""), addr)
	h := map[string]string{"Cookie": uma}
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
	connected := `40{"sid":"R1"}` + "\x1e" + `40/admin,{"sid":"A1"}` + "\x1e" + "6"
	f.gets <- atk12Answer(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Length: %d\r\n\r\n%s", len(connected), connected))
	res, body, err = c.read("GET", 10*time.Second)
	require.NoError(t, err)
	require.Contains(t, body, `40/admin,{"sid":"A1"}`, "the user is connected to /admin while no rule guards it")
	atk11Waiting(t, e, 0)

	require.NoError(t, c.raw(atk11Request(addr, "GET", q, h, "")))
	atk11Waiting(t, e, 1)
	atk10Reload(t, e, config("namespace /admin role admin"))
	secret := `42/admin,["secret",{"payroll":1}]`
	f.gets <- atk12Answer(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Length: %d\r\n\r\n%s", len(secret), secret))
	res, body, err = c.read("GET", 10*time.Second)
	require.NoError(t, err, "the GET parked across the reload")
	assert.NotContains(t, body, "payroll", "a GET parked across a reload that restricted /admin relayed its packet to a user: %q", body)
	t.Logf("the parked GET's answer: %d %q", res.StatusCode, body)
	f.close()
}

// A session over its message rate while its GET waits parked: the POST
// that crosses the rate gets 429, the parked GET gets 429 with
// Retry-After too (answered by the edge, from the POST's goroutine),
// nothing stays in flight or parked waiting, and the GET's connection
// serves on. HOLDS at HEAD.
func TestAttack12MessageRateCloseEndsAParkedGet(t *testing.T) {
	s := atk11Start(t, "rate_limit messages 5/m")
	sid := atk11OpenOn(t, s.edge, s.addr, "")
	q := atk11Path + "&sid=" + sid
	g := atk11ParkGet(t, s, sid, "HTTP/1.1", 1)
	p := atk11Dial(t, s.addr)
	var last int
	for i := range 20 {
		res, body, err := p.do("POST", q, map[string]string{"Origin": advAllowed}, fmt.Sprintf(`42%d["echo","m"]`, i))
		require.NoError(t, err)
		last = res.StatusCode
		if res.StatusCode == 429 {
			break
		}
		require.Equal(t, 200, res.StatusCode, body)
		// Each echo's ack answers the parked GET: park the next.
		res, body, err = g.read("GET", 10*time.Second)
		require.NoError(t, err)
		require.Equal(t, 200, res.StatusCode, body)
		require.NoError(t, g.raw(atk11Request(s.addr, "GET", q, map[string]string{"Origin": advAllowed}, "")))
		atk11Waiting(t, s.edge, 1)
	}
	require.Equal(t, 429, last, "the message rate was never crossed")
	res, body, err := g.read("GET", 10*time.Second)
	require.NoError(t, err, "the parked GET of a session closed for its rate")
	assert.Equal(t, 429, res.StatusCode, body)
	assert.NotEmpty(t, res.Header.Get("Retry-After"))
	assert.Equal(t, []string{advAllowed}, res.Header.Values("Access-Control-Allow-Origin"))
	atk11Waiting(t, s.edge, 0)
	assert.Eventually(t, func() bool { return atk12Parked(t, s.edge, "waiting") == 0 }, 5*time.Second, 20*time.Millisecond)
	res, body, err = g.do("GET", "/healthz", nil, "")
	require.NoError(t, err, "the connection after the 429")
	assert.Equal(t, 200, res.StatusCode, body)
}

// Behind proxy_protocol (no epoll on the client's connection: readClient
// watches it), requests pipelined behind a parked GET are served after
// its answer, in order, and a trickled one is kept too; twenty rounds
// on one connection leave nothing in flight. HOLDS at HEAD.
func TestAttack12ProxyProtocolPipelinedBehindAParkedGet(t *testing.T) {
	s := atk11ProxyProtocolEdge(t)
	c := atk11Dial(t, s.addr)
	require.NoError(t, c.raw("PROXY TCP4 10.9.8.7 127.0.0.1 40001 80\r\n"))
	res, body, err := c.do("GET", atk11Path, nil, "")
	require.NoError(t, err)
	sid := sidPattern.FindStringSubmatch(body)[1]
	q := atk11Path + "&sid=" + sid
	res, body, err = c.do("POST", q, nil, "40")
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode, body)
	res, body, err = c.do("GET", q, nil, "")
	require.NoError(t, err)
	require.Contains(t, body, "40{")
	atk11Waiting(t, s.edge, 0)
	p := atk11Dial(t, s.addr)
	require.NoError(t, p.raw("PROXY TCP4 10.9.8.7 127.0.0.1 40002 80\r\n"))
	for i := range 20 {
		get := atk11Request(s.addr, "GET", q, nil, "")
		page := atk11Request(s.addr, "GET", "/socket.io/?EIO=4&transport=polling&sid=nope", nil, "")
		if i%2 == 0 {
			require.NoError(t, c.raw(get+page))
			atk11Waiting(t, s.edge, 1)
		} else {
			require.NoError(t, c.raw(get))
			atk11Waiting(t, s.edge, 1)
			require.NoError(t, c.raw(page[:10]))
			require.NoError(t, c.raw(page[10:]))
		}
		res, body, err := p.do("POST", q, nil, fmt.Sprintf(`42%d["echo","pp"]`, i))
		require.NoError(t, err)
		require.Equal(t, 200, res.StatusCode, body)
		res, body, err = c.read("GET", 10*time.Second)
		require.NoError(t, err, "round %d: the GET", i)
		require.Contains(t, body, fmt.Sprintf("43%d[", i), "round %d", i)
		res, body, err = c.read("GET", 10*time.Second)
		require.NoError(t, err, "round %d: the pipelined request", i)
		assert.Equal(t, 400, res.StatusCode, "round %d: a GET of an unknown sid: %s", i, body)
		atk11Waiting(t, s.edge, 0)
	}
}
