package socketioproxy_test

// Attacks on the relay Stopper and the shared per-worker watches
// (exit.go), the wsSession rules (websocket.go, withdraw.go), the memory
// settler (memory.go) and setProbing (bridge_http.go).

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"github.com/gorilla/websocket"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// atk9DynamicSite is the Caddyfile of an edge at edge whose workers
// come from the file list: src inside the source's block ("refresh
// 100ms" when empty), extra inside socketio_proxy's.
func atk9DynamicSite(edge, list, src, extra string) testenv.EdgeConfig {
	if src == "" {
		src = "refresh 100ms"
	}
	return testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%s {
	bind 127.0.0.1
	socketio_proxy {
		dynamic file %s {
			%s
		}
		sticky_secret %s
		%s
	}
}
`, edge, list, src, stickySecret, extra))
}

// atk9End reads until the edge's close frame and returns its code and
// reason; -1 when the connection ended without one.
func atk9End(w *atk8Conn, d time.Duration) (int, string) {
	end := time.Now().Add(d)
	for {
		op, m, err := w.readFrame(time.Until(end))
		if err != nil {
			return -1, err.Error()
		}
		if op == 1 && string(m) == "2" {
			_, _ = w.c.Write(atk8Frame(0x81, []byte("3"), 0, true))
		}
		if op == 8 {
			// Answer the close, as a client does, and hang up: the edge
			// waits a while for the answer otherwise.
			_, _ = w.c.Write(atk8Frame(0x88, m[:min(len(m), 2)], 0, true))
			w.c.Close()
			if len(m) < 2 {
				return 1005, ""
			}
			return int(binary.BigEndian.Uint16(m)), string(m[2:])
		}
	}
}

var atk9WorkerRe = regexp.MustCompile(`"worker":\s*"([^"]+)"`)

// atk9Worker asks the session's worker its name with an echo.
func atk9Worker(w *atk8Conn, id int) string {
	w.t.Helper()
	w.write(atk8Frame(0x81, []byte(fmt.Sprintf(`42%d["echo","w"]`, id)), 0, true))
	m := w.until(20*time.Second, func(op byte, m []byte) bool { return strings.HasPrefix(string(m), fmt.Sprintf("43%d[", id)) })
	got := atk9WorkerRe.FindStringSubmatch(string(m))
	require.NotNil(w.t, got, string(m))
	return got[1]
}

// atk9Alive reports whether the session still answers an echo within d.
func atk9Alive(w *atk8Conn, id int, d time.Duration) bool {
	_ = w.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := w.c.Write(atk8Frame(0x81, []byte(fmt.Sprintf(`42%d["echo","a"]`, id)), 0, true)); err != nil {
		return false
	}
	end := time.Now().Add(d)
	for {
		op, m, err := w.readFrame(time.Until(end))
		if err != nil || op == 8 {
			return false
		}
		if op == 1 && string(m) == "2" {
			_, _ = w.c.Write(atk8Frame(0x81, []byte("3"), 0, true))
		}
		if op == 1 && strings.HasPrefix(string(m), fmt.Sprintf("43%d[", id)) {
			return true
		}
	}
}

// atk9WorkerList is a dynamic source's file of workers, and the func
// that replaces its list at once (a rename, never a half-written file).
func atk9WorkerList(t *testing.T) (list string, write func(addrs ...string)) {
	list = filepath.Join(t.TempDir(), "workers")
	return list, func(addrs ...string) {
		tmp := list + ".new"
		require.NoError(t, os.WriteFile(tmp, []byte(strings.Join(addrs, "\n")+"\n"), 0o600))
		require.NoError(t, os.Rename(tmp, list))
	}
}

// atk9Relays is the number of live relays, both engines.
func atk9Relays(t *testing.T, admin string) float64 {
	return sum(scrape(t, admin), `^caddy_socketio_websocket_relays\{`)
}

// atk9Split opens WebSocket sessions until at least n run on each of
// the named workers, and returns them by worker.
func atk9Split(t *testing.T, edge string, n int, names ...string) map[string][]*atk8Conn {
	t.Helper()
	by := map[string][]*atk8Conn{}
	enough := func() bool {
		for _, name := range names {
			if len(by[name]) < n {
				return false
			}
		}
		return true
	}
	// A worker the dynamic source has just given back may take a
	// refresh to be picked: the tries go on for 10 s.
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; !enough(); i++ {
		require.True(t, time.Now().Before(deadline), "sessions never spread over %v: %v", names, by)
		w := atk8Open(t, edge, "", true)
		name := atk9Worker(w, 900+i)
		by[name] = append(by[name], w)
	}
	return by
}

// atk9TwoWorkers is workers A and B behind an edge with extra lines.
func atk9TwoWorkers(t *testing.T, extra string) (edge string, e *testenv.Edge, a, b *testenv.FlaskWorker) {
	t.Helper()
	a = testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "A", SecretKey: "atk9-secret"})
	b = testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "B", SecretKey: "atk9-secret"})
	edge = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	e = testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%s {
	bind 127.0.0.1
	socketio_proxy {
		to %s %s
		sticky_secret %s
		%s
	}
}
`, edge, a.Addr, b.Addr, stickySecret, extra)), edge)
	return edge, e, a, b
}

// atk9PollOn opens a connected polling session on the named worker (the
// sticky cookie keeps it there) and returns a request func for it.
func atk9PollOn(t *testing.T, edge, name string) (sid string, cookie string) {
	t.Helper()
	for i := 0; i < 40; i++ {
		res, err := http.Get("http://" + edge + "/socket.io/?EIO=4&transport=polling")
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		m := sidPattern.FindStringSubmatch(string(body))
		require.NotNil(t, m, string(body))
		var cs []string
		for _, c := range res.Cookies() {
			cs = append(cs, c.Name+"="+c.Value)
		}
		sid, cookie = m[1], strings.Join(cs, "; ")
		do := func(method, body string) string {
			req, _ := http.NewRequest(method, "http://"+edge+"/socket.io/?EIO=4&transport=polling&sid="+sid, strings.NewReader(body))
			if cookie != "" {
				req.Header.Set("Cookie", cookie)
			}
			res, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			require.Equal(t, 200, res.StatusCode, string(b))
			return string(b)
		}
		do("POST", "40")
		got := do("GET", "")
		for !strings.Contains(got, "40{") {
			got = do("GET", "")
		}
		do("POST", `421["echo","w"]`)
		got = do("GET", "")
		for !strings.Contains(got, "431[") {
			got = do("GET", "")
		}
		w := atk9WorkerRe.FindStringSubmatch(got)
		require.NotNil(t, w, got)
		if w[1] == name {
			return sid, cookie
		}
	}
	t.Fatalf("no polling session landed on %s", name)
	return "", ""
}

// atk9Upgrade opens the WebSocket of an upgrade of polling session sid
// (2probe, 3probe, 5) on a raw connection.
func atk9Upgrade(t *testing.T, edge, sid, cookie string) (*atk8Conn, bool) {
	t.Helper()
	c, err := netDial(edge)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	req := "GET /socket.io/?EIO=4&transport=websocket&sid=" + sid + " HTTP/1.1\r\nHost: " + edge +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	if cookie != "" {
		req += "Cookie: " + cookie + "\r\n"
	}
	_, err = io.WriteString(c, req+"\r\n")
	require.NoError(t, err)
	w := newAtk8Conn(t, c)
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	res, err := http.ReadResponse(w.br, nil)
	require.NoError(t, err)
	if res.StatusCode != 101 {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 200))
		t.Logf("upgrade of %s: %d %s", sid, res.StatusCode, b)
		return nil, false
	}
	w.write(atk8Frame(0x81, []byte("2probe"), 0, true))
	op, m, err := w.readFrame(10 * time.Second)
	if err != nil || op != 1 || string(m) != "3probe" {
		t.Logf("upgrade of %s: probe answered %d %q %v", sid, op, m, err)
		return w, false
	}
	w.write(atk8Frame(0x81, []byte("5"), 0, true))
	return w, true
}

// A dynamic worker (file source) that leaves the set ends the relays to
// it, and a worker that comes back and leaves again ends its new ones;
// the other worker's relays are untouched. HOLDS at HEAD.
func TestAttack9DynamicLeaveCutsOnlyTheLeaver(t *testing.T) {
	atk8Relay(t)
	a := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "A", SecretKey: "atk9-secret"})
	b := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "B", SecretKey: "atk9-secret"})
	list, write := atk9WorkerList(t)
	write(a.Addr, b.Addr)
	edge := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg := atk9DynamicSite(edge, list, "", "")
	e := testenv.StartEdge(t, cfg, edge)
	t0 := time.Now()
	var keep []*atk8Conn
	for cycle := range 2 {
		by := atk9Split(t, edge, 1, "A", "B")
		t.Logf("split %v", time.Since(t0))
		keep = append(keep, by["B"]...)
		write(b.Addr)
		for i, w := range by["A"] {
			code, reason := atk9End(w, 10*time.Second)
			assert.Equal(t, 1001, code, "cycle %d: A session %d (%s)", cycle, i, reason)
		}
		for i, w := range keep {
			assert.True(t, atk9Alive(w, 100+i, 10*time.Second), "cycle %d: B session %d was cut", cycle, i)
		}
		t.Logf("cut %v", time.Since(t0))
		require.Eventually(t, func() bool { return atk9Relays(t, e.AdminAddr) == float64(len(keep)) },
			10*time.Second, 20*time.Millisecond)
		t.Logf("gauge %v", time.Since(t0))
		write(a.Addr, b.Addr)
	}
}

// A reload of a dynamic config while relays run, then the worker leaves
// the dynamic set: its sessions relayed since before the reload must end
// (1001) as those relayed since do, so that their clients reconnect to a
// worker that is there.
//
// Broke before 9a1ca2b's fix, and already at 4226d1d: the relays of
// worker A opened before the reload went on after A had left the file,
// for as long as A stayed up. A relay watched the retired context of its
// config's upstream; the reload dropped the old config's dynamic
// upstreams in pool.close() without retiring them, and the new config
// built upstreams of its own for the same workers, whose retirement
// never reached relays registered under the old ones. Now the configs of
// one dynamic source share each worker's retirement (retireWith). The
// polling sessions were not affected (their next request goes through
// the new config).
func TestAttack9DynamicLeaveAfterReloadCutsOlderRelays(t *testing.T) {
	atk8Relay(t)
	a := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "A", SecretKey: "atk9-secret"})
	b := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "B", SecretKey: "atk9-secret"})
	list, write := atk9WorkerList(t)
	write(a.Addr, b.Addr)
	edge := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg := func(extra string) testenv.EdgeConfig { return atk9DynamicSite(edge, list, "", extra) }
	e := testenv.StartEdge(t, cfg(""), edge)
	by := atk9Split(t, edge, 2, "A", "B")
	e.Reload(t, cfg("drain_timeout 30s"))
	for i, w := range append(by["A"], by["B"]...) {
		require.True(t, atk9Alive(w, 10+i, 10*time.Second), "session %d did not survive the reload", i)
	}
	write(b.Addr)
	for i, w := range by["A"] {
		code, reason := atk9End(w, time.Duration(4-3*min(i, 1))*time.Second)
		assert.Equal(t, 1001, code, "A session %d relayed since before the reload outlived A's leaving (%s)", i, reason)
	}
	for i, w := range by["B"] {
		assert.True(t, atk9Alive(w, 50+i, 10*time.Second), "B session %d was cut", i)
	}
}

func netDial(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, 10*time.Second) }

func newAtk8Conn(t *testing.T, c net.Conn) *atk8Conn {
	return &atk8Conn{t: t, c: c, br: bufio.NewReader(c)}
}

// Upgrades of polling sessions on a draining worker during its drain
// (after the drain's spread of cuts was planned, so only the shared
// watch of the worker's cut context can end them), and relays of that
// worker closing themselves at the moment of the cut: every relay that
// started on the worker must end by the cut (1001 "worker draining for a
// deploy"), the other worker's relays go on, the relay gauge comes back to the survivors, and the next drain
// cycle still cuts (the shared watch's count was not upset by the
// relays that ended during the cut). HOLDS at HEAD.
func TestAttack9UpgradesAndClosesRacingTheCut(t *testing.T) {
	atk8Relay(t)
	edge, e, a, _ := atk9TwoWorkers(t, "drain_timeout 2s")
	before := atk9Goroutines(t, e.AdminAddr)
	defer func() {
		// Nothing of the watches is left running: no goroutine in a
		// watch's callback, and about as many goroutines as before.
		var dump string
		require.Eventually(t, func() bool {
			n, d := atk9GoroutineDump(t, e.AdminAddr)
			dump = d
			return n <= before+4
		}, 10*time.Second, 50*time.Millisecond, "goroutines before %d:\n%s", before, dump)
		assert.NotContains(t, dump, "watchLocked")
	}()
	for cycle := range 2 {
		by := atk9Split(t, edge, 4, "A", "B")
		type poll struct{ sid, cookie string }
		var polls []poll
		for range 6 {
			sid, cookie := atk9PollOn(t, edge, "A")
			polls = append(polls, poll{sid, cookie})
		}
		status, body := adminDo(t, e, http.MethodPost, "/socketio/upstreams/"+a.Addr+"/drain")
		require.Equal(t, 200, status, body)
		drained := time.Now()
		type up struct {
			w  *atk8Conn
			ok bool
		}
		ups := make(chan up, len(polls))
		for i, p := range polls {
			go func() {
				time.Sleep(time.Duration(i) * 10 * time.Millisecond)
				w, ok := atk9Upgrade(t, edge, p.sid, p.cookie)
				ups <- up{w, ok}
			}()
		}
		for _, w := range by["A"][:3] {
			go func() {
				// At the cut: 2 s after the drain.
				time.Sleep(time.Until(drained.Add(1990 * time.Millisecond)))
				_, _ = w.c.Write(atk8Frame(0x88, []byte{3, 232}, 0, true))
				w.c.Close()
			}()
		}
		started := 0
		for range polls {
			u := <-ups
			if !u.ok {
				continue
			}
			started++
			code, reason := atk9End(u.w, 8*time.Second)
			assert.Equal(t, 1001, code, "cycle %d: a relay upgraded during the drain was not ended (%s)", cycle, reason)
			assert.Equal(t, "worker draining for a deploy", reason, "cycle %d", cycle)
		}
		t.Logf("cycle %d: %d upgrades started a relay during the drain", cycle, started)
		assert.Positive(t, started, "cycle %d: no upgrade started a relay during the drain", cycle)
		for i, w := range by["A"][3:] {
			code, reason := atk9End(w, 8*time.Second)
			assert.Equal(t, 1001, code, "cycle %d: A session %d (%s)", cycle, i, reason)
			assert.Equal(t, "worker draining for a deploy", reason, "cycle %d: A session %d", cycle, i)
		}
		for i, w := range by["B"] {
			assert.True(t, atk9Alive(w, 200+i, 10*time.Second), "cycle %d: B session %d was cut", cycle, i)
		}
		require.Eventually(t, func() bool { return atk9Relays(t, e.AdminAddr) == float64(len(by["B"])) },
			10*time.Second, 20*time.Millisecond, "cycle %d: relays %v, want %d", cycle, atk9Relays(t, e.AdminAddr), len(by["B"]))
		for _, w := range by["B"] {
			w.c.Close()
		}
		require.Eventually(t, func() bool { return atk9Relays(t, e.AdminAddr) == 0 }, 10*time.Second, 20*time.Millisecond)
		status, body = adminDo(t, e, http.MethodDelete, "/socketio/upstreams/"+a.Addr+"/drain")
		require.Equal(t, 200, status, body)
	}
}

// atk9Heap is what the memory measurement reads of the edge.
type atk9Heap struct{ gcs, cpu, alloc float64 }

func atk9ReadHeap(t *testing.T, admin string) atk9Heap {
	return atk9Heap{gcs: atk8Process(t, admin, "go_gc_duration_seconds_count"),
		cpu: atk8Process(t, admin, "process_cpu_seconds_total"), alloc: atk8Process(t, admin, "go_memstats_alloc_bytes_total")}
}

// The memory settler (memory.go) forces a collection and returns the
// free heap whenever the edge allocated at most max(1 MB, live/256) in
// the last second while its heap exceeds the live heap by max(4 MB,
// live/4). A client can keep an edge "quiet" and yet growing: a trickle
// of allocations just under the quiet line, or a burst of a few MB every
// other second. This measures forced collections and CPU against an
// idle baseline with idle WebSocket sessions holding a live heap; it
// only reports figures (EDGE_ATTACK9_MEASURE=1 runs it, ~50 s).
func TestAttack9MemorySettlerForcedCollections(t *testing.T) {
	if os.Getenv("EDGE_ATTACK9_MEASURE") == "" {
		t.Skip("a measurement: set EDGE_ATTACK9_MEASURE=1")
	}
	atk8Relay(t)
	edge, _, admin := atk8Stack(t, "")
	idle := 300
	if n, err := strconv.Atoi(os.Getenv("EDGE_ATTACK9_IDLE")); err == nil {
		idle = n
	}
	for range idle {
		atk8Open(t, edge, "", true)
	}
	t.Logf("live heap after %d idle WebSockets: %.1f MB in use", idle, atk8Process(t, admin, "go_memstats_heap_inuse_bytes")/(1<<20))
	sid, _ := func() (string, string) {
		res, err := http.Get("http://" + edge + "/socket.io/?EIO=4&transport=polling")
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		m := sidPattern.FindStringSubmatch(string(body))
		require.NotNil(t, m, string(body))
		return m[1], ""
	}()
	url := "http://" + edge + "/socket.io/?EIO=4&transport=polling&sid=" + sid
	post := func(body string) {
		res, err := http.Post(url, "text/plain", strings.NewReader(body))
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		require.Equal(t, 200, res.StatusCode)
	}
	post("40")
	stop := make(chan struct{})
	gets := make(chan struct{})
	go func() {
		defer close(gets)
		for {
			select {
			case <-stop:
				return
			default:
			}
			res, err := http.Get(url)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	}()
	defer func() {
		close(stop)
		if res, err := http.Post(url, "text/plain", strings.NewReader("1")); err == nil {
			res.Body.Close()
		}
		<-gets
	}()
	const phase = 15 * time.Second
	measure := func(name string, load func(end time.Time)) {
		before := atk9ReadHeap(t, admin)
		end := time.Now().Add(phase)
		load(end)
		time.Sleep(time.Until(end))
		after := atk9ReadHeap(t, admin)
		t.Logf("%-28s %2.0f GCs, %.3f s CPU, %.2f MB/s allocated", name, after.gcs-before.gcs, after.cpu-before.cpu,
			(after.alloc-before.alloc)/phase.Seconds()/(1<<20))
	}
	trickles := 2
	if os.Getenv("EDGE_ATTACK9_BURST") != "" {
		trickles = 0
	}
	echo := func(n int) string { return `42["echo","` + strings.Repeat("x", n) + `"]` }
	measure(fmt.Sprintf("idle (%d WebSockets)", idle), func(time.Time) {})
	for _, n := range []int{20 << 10, 60 << 10}[:trickles] {
		measure(fmt.Sprintf("trickle %d kB / 200 ms", n>>10), func(end time.Time) {
			for time.Now().Before(end) {
				post(echo(n))
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
	burst := max(6, idle/150)
	if n, err := strconv.Atoi(os.Getenv("EDGE_ATTACK9_BURST")); err == nil {
		burst = n
	}
	measure(fmt.Sprintf("burst %d x 700 kB / 2 s", burst), func(end time.Time) {
		for time.Now().Add(2 * time.Second).Before(end) {
			next := time.Now().Add(2 * time.Second)
			for range burst {
				post(echo(700 << 10))
			}
			time.Sleep(time.Until(next))
		}
	})
}

// atk9Recovered holds a session of uma's and recovers it from a fresh
// polling session: it returns the fresh sid and the old one.
func atk9Recovered(t *testing.T, s *advStack, uma string) (fresh, old string) {
	t.Helper()
	old, pid := pollConnected(t, s, uma)
	cutPoll(t, s, uma, old)
	require.Eventually(t, func() bool { return metric(t, s.edge, "caddy_socketio_sessions_held") == 1 },
		5*time.Second, 20*time.Millisecond, "the session is held")
	fresh = pollOpen(t, s, uma)
	status, body := pollPost(t, s, uma, fresh, `40{"pid":"`+pid+`","offset":""}`)
	require.Equal(t, 200, status, body)
	status, body = pollGet(t, s, uma, fresh)
	require.Equal(t, 200, status, body)
	_, got := connectReply(t, body)
	require.Equal(t, pid, got, "recovered")
	return fresh, old
}

// atk9PollTakes times one poll of sid, cut at d.
func atk9PollTakes(t *testing.T, s *advStack, cookie, sid string, d time.Duration) (time.Duration, string) {
	req, _ := http.NewRequest("GET", s.url()+"/socket.io/?EIO=4&transport=polling&sid="+sid, nil)
	req.Header.Set("Cookie", cookie)
	start := time.Now()
	res, err := (&http.Client{Timeout: d}).Do(req)
	if err != nil {
		return time.Since(start), ""
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return time.Since(start), string(b)
}

// Upgrades that fail after their probe on a recovered session: one of
// the fresh sid, one of the old sid (which routes to the recovered
// bridge), each closed after 3probe (or refused). The session's polls
// must then wait again, not come back at once (a spin), and the session
// must still upgrade and echo. HOLDS at HEAD.
func TestAttack9RecoverFailedProbesAfterRecoveryLeaveNoSpin(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 20s", false)
	uma := testenv.Login(t, s.worker.URL(), "uma", "user")
	fresh, old := atk9Recovered(t, s, uma)
	for _, sid := range []string{fresh, old} {
		h := http.Header{"Cookie": {uma}}
		up, res, err := websocket.DefaultDialer.Dial("ws://"+s.addr+"/socket.io/?EIO=4&transport=websocket&sid="+sid, h)
		if res != nil {
			res.Body.Close()
		}
		if err != nil {
			t.Logf("upgrade of %s refused: %v", sid, err)
			continue
		}
		require.NoError(t, up.WriteMessage(websocket.TextMessage, []byte("2probe")))
		_ = up.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, m, err := up.ReadMessage()
		t.Logf("probe of %s: %q %v", sid, m, err)
		up.Close()
	}
	// The failed probes' resets reach the bridge: poll until one waits.
	var quick int
	for range 3 {
		// The poll before was cut by this client: wait until the edge
		// saw it go, or the next is a second GET in flight.
		require.Eventually(t, func() bool { return inFlight(t, s.edge) == 0 }, 5*time.Second, 10*time.Millisecond)
		took, body := atk9PollTakes(t, s, uma, fresh, time.Second)
		if took < 300*time.Millisecond {
			quick++
			t.Logf("poll came back after %v: %q", took, body)
		}
	}
	assert.LessOrEqual(t, quick, 1, "polls of the recovered session come back at once after failed probes: the client spins")
	ws := upgradeFully(t, s, uma, fresh)
	ws.echo(t, 71)
}

// Two upgrades of one recovered sid: the first completes (2probe, 3probe,
// 5), the second probes afterwards and sends 5 too. The second must not
// take the session (nor break the first); the first goes on echoing.
// HOLDS at HEAD.
func TestAttack9RecoverASecondUpgradeOfOneSidTakesNothing(t *testing.T) {
	s := startAdvStack(t, nil, "", "recover 20s", false)
	uma := testenv.Login(t, s.worker.URL(), "uma", "user")
	fresh, _ := atk9Recovered(t, s, uma)
	u2 := dialUpgrade(t, s, uma, fresh) // both opened before either probes
	ws := upgradeFully(t, s, uma, fresh)
	if u2.WriteMessage(websocket.TextMessage, []byte("2probe")) == nil {
		_ = u2.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, m, err := u2.ReadMessage()
		t.Logf("second probe: %q %v", m, err)
		if err == nil {
			_ = u2.WriteMessage(websocket.TextMessage, []byte("5"))
			_ = u2.WriteMessage(websocket.TextMessage, []byte(`4299["echo","x"]`))
			_ = u2.SetReadDeadline(time.Now().Add(2 * time.Second))
			for {
				_, m, err := u2.ReadMessage()
				if err != nil {
					break
				}
				assert.NotContains(t, string(m), "4399", "the second upgrade took the session")
			}
		}
	}
	ws.echo(t, 72)
	ws.echo(t, 73)
}

// atk9Until reads until ok, answering pings, or fails after d.
func atk9Send(w *atk8Conn, msg string) error {
	_ = w.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := w.c.Write(atk8Frame(0x81, []byte(msg), 0, true))
	return err
}

// Concurrent relayed sessions keep their own rule state (wsSession):
// a user's session that runs over its message rate is closed with 1008
// while a second session of the same user on the same IP keeps its own
// bucket; the first's denied /admin CONNECT and its edge-made DISCONNECT
// (its told map) never reach an admin's session, whose /admin works; a
// reload that lowers the rate applies to the running sessions at once.
// HOLDS at HEAD.
func TestAttack9ConcurrentSessionsKeepTheirOwnRuleState(t *testing.T) {
	atk8Relay(t)
	worker := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1", SecretKey: "atk8-secret"})
	edge := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	e := testenv.StartEdge(t, atk8Config(edge, worker.Addr, "rate_limit messages 12/m"), edge)
	uma := testenv.Login(t, worker.URL(), "uma", "user")
	ada := testenv.Login(t, worker.URL(), "ada", "admin")
	x := atk8Open(t, edge, uma, true)
	y := atk8Open(t, edge, uma, true)
	z := atk8Open(t, edge, ada, true)

	// x: /admin is denied, an event there gets the edge's DISCONNECT.
	require.NoError(t, atk9Send(x, "40/admin,"))
	m := x.until(10*time.Second, func(op byte, m []byte) bool { return strings.HasPrefix(string(m), "44/admin,") })
	t.Logf("x: %s", m)
	require.NoError(t, atk9Send(x, `42/admin,["stats"]`))
	x.until(10*time.Second, func(op byte, m []byte) bool { return string(m) == "41/admin," })
	// z: the admin's /admin works, and nothing of x's reaches it.
	require.NoError(t, atk9Send(z, "40/admin,"))
	z.until(10*time.Second, func(op byte, m []byte) bool { return strings.HasPrefix(string(m), "40/admin,{") })
	require.NoError(t, atk9Send(z, `42/admin,7["stats"]`))
	m = z.until(10*time.Second, func(op byte, m []byte) bool {
		assert.NotEqual(t, "41/admin,", string(m), "the admin's session was told of a withdrawal")
		return strings.HasPrefix(string(m), "43/admin,7")
	})
	t.Logf("z: %.80s", m)

	// x runs over its rate (3 messages so far, 12 a minute).
	code, reason := 0, ""
	for i := range 20 {
		if atk9Send(x, fmt.Sprintf(`42%d["echo","x"]`, 10+i)) != nil {
			break
		}
	}
	code, reason = atk9End(x, 10*time.Second)
	assert.Equal(t, 1008, code, reason)
	// y, same user and IP, has its own bucket: 10 echoes go round.
	for i := range 10 {
		y.echo(40 + i)
	}
	// A reload to 4/m: y (11 messages of 12 spent) is closed at its next
	// message or so; z (4 spent) is not closed by two more.
	e.Reload(t, atk8Config(edge, worker.Addr, "rate_limit messages 4/m"))
	z.echo(60)
	z.echo(61)
	for i := range 6 {
		if atk9Send(y, fmt.Sprintf(`42%d["echo","y"]`, 70+i)) != nil {
			break
		}
	}
	code, reason = atk9End(y, 10*time.Second)
	assert.Equal(t, 1008, code, "y after the reload: %s", reason)
	z.c.Close()
	require.Eventually(t, func() bool { return atk9Relays(t, e.AdminAddr) == 0 }, 10*time.Second, 20*time.Millisecond)
}

// The edge exits (SIGTERM, drain_period 1s) while one worker drains
// (drain_timeout 30s, not reached): every relay gets the Engine.IO close
// packet and a 1001, the other worker's with "edge shutting down", the
// draining worker's with that or the drain's reason if its spread cut
// came first; the edge exits within the drain period and its slack.
// HOLDS at HEAD.
func TestAttack9ExitWhileAWorkerDrains(t *testing.T) {
	atk8Relay(t)
	edge, e, a, _ := atk9TwoWorkers(t, "drain_timeout 30s\n\t\tdrain_period 1s")
	by := atk9Split(t, edge, 3, "A", "B")
	status, body := adminDo(t, e, http.MethodPost, "/socketio/upstreams/"+a.Addr+"/drain")
	require.Equal(t, 200, status, body)
	type end struct {
		worker, last, reason string
		code                 int
	}
	ends := make(chan end, len(by["A"])+len(by["B"]))
	for name, ws := range by {
		for _, w := range ws {
			go func() {
				r := end{worker: name, code: -1}
				for {
					op, m, err := w.readFrame(30 * time.Second)
					if err != nil {
						ends <- r
						return
					}
					switch {
					case op == 8:
						r.code = 1005
						if len(m) >= 2 {
							r.code, r.reason = int(binary.BigEndian.Uint16(m)), string(m[2:])
						}
						_, _ = w.c.Write(atk8Frame(0x88, m[:min(len(m), 2)], 0, true))
						w.c.Close()
						ends <- r
						return
					case op == 1 && string(m) == "2":
						_, _ = w.c.Write(atk8Frame(0x81, []byte("3"), 0, true))
					case op == 1:
						r.last = string(m)
					}
				}
			}()
		}
	}
	took := e.Stop(t)
	t.Logf("edge exited %v after SIGTERM", took)
	for range len(by["A"]) + len(by["B"]) {
		r := <-ends
		assert.Equal(t, 1001, r.code, "%+v", r)
		assert.Equal(t, "1", r.last, "%+v", r)
		if r.worker == "B" {
			assert.Equal(t, "edge shutting down", r.reason, "%+v", r)
		} else {
			assert.Contains(t, []string{"edge shutting down", "worker draining for a deploy"}, r.reason, "%+v", r)
		}
	}
}

// atk9GoroutineDump reads the edge's goroutine profile (debug=1): the
// number of goroutines and the dump.
func atk9GoroutineDump(t *testing.T, admin string) (int, string) {
	t.Helper()
	res, err := http.Get("http://" + admin + "/debug/pprof/goroutine?debug=1")
	require.NoError(t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	m := regexp.MustCompile(`goroutine profile: total (\d+)`).FindSubmatch(b)
	require.NotNil(t, m, "%.200s", b)
	n, _ := strconv.Atoi(string(m[1]))
	return n, string(b)
}

func atk9Goroutines(t *testing.T, admin string) int {
	n, _ := atk9GoroutineDump(t, admin)
	return n
}

// An operator's undrain (admin API DELETE) lands around the moment the
// drain_timeout cuts the worker, a few ms before or after: a relay of
// the worker from before the drain ends with 1001 or goes on, and every
// relay that starts on the worker after the undrain goes on (no stale
// watch of the cut context ends it), and is cut by the next drain.
// HOLDS at HEAD (the window where a late watch callback of the old cut
// context, which matches relays by worker rather than by context, could
// end a relay of the new one is a few µs wide; not reached here).
func TestAttack9UndrainAtTheTimeout(t *testing.T) {
	atk8Relay(t)
	edge, e, a, _ := atk9TwoWorkers(t, "drain_timeout 400ms")
	for i, delta := range []time.Duration{-15 * time.Millisecond, -3 * time.Millisecond, 0, 3 * time.Millisecond, 15 * time.Millisecond} {
		by := atk9Split(t, edge, 1, "A")
		for _, w := range by["B"] {
			w.c.Close()
		}
		status, body := adminDo(t, e, http.MethodPost, "/socketio/upstreams/"+a.Addr+"/drain")
		require.Equal(t, 200, status, body)
		time.Sleep(time.Until(time.Now().Add(400*time.Millisecond + delta)))
		status, body = adminDo(t, e, http.MethodDelete, "/socketio/upstreams/"+a.Addr+"/drain")
		require.Equal(t, 200, status, body)
		split := atk9Split(t, edge, 2, "A")
		for _, w := range split["B"] {
			w.c.Close()
		}
		fresh := split["A"]
		for j, w := range fresh {
			assert.True(t, atk9Alive(w, 300+j, 2*time.Second), "round %d (%v): a relay opened after the undrain was cut", i, delta)
		}
		old := atk9Alive(by["A"][0], 400, 2*time.Second)
		t.Logf("round %d (%v): the relay from before the drain alive: %v", i, delta, old)
		// The next drain cuts the relays opened after the undrain.
		status, body = adminDo(t, e, http.MethodPost, "/socketio/upstreams/"+a.Addr+"/drain")
		require.Equal(t, 200, status, body)
		for j, w := range fresh {
			code, reason := atk9End(w, 5*time.Second)
			assert.Equal(t, 1001, code, "round %d: relay %d after the next drain (%s)", i, j, reason)
		}
		if old {
			atk9End(by["A"][0], 5*time.Second)
		}
		by["A"][0].c.Close()
		require.Eventually(t, func() bool { return atk9Relays(t, e.AdminAddr) == 0 }, 10*time.Second, 20*time.Millisecond)
		status, body = adminDo(t, e, http.MethodDelete, "/socketio/upstreams/"+a.Addr+"/drain")
		require.Equal(t, 200, status, body)
	}
}

// Two sites name worker A: one through a dynamic file, one statically.
// A leaving the file ends the first site's relays to A (1001) and not
// the second's: a config's retirement is its own, and the shared watch
// of one config's retired context matches only that config's relays.
// HOLDS at HEAD.
func TestAttack9DynamicLeaveSparesAnotherSitesRelays(t *testing.T) {
	atk8Relay(t)
	a := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "A", SecretKey: "atk9-secret"})
	b := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "B", SecretKey: "atk9-secret"})
	list, write := atk9WorkerList(t)
	write(a.Addr)
	site1 := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	site2 := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	e := testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%s {
	bind 127.0.0.1
	socketio_proxy {
		dynamic file %s {
			refresh 100ms
		}
		sticky_secret %s
	}
}
http://%s {
	bind 127.0.0.1
	socketio_proxy {
		to %s
		sticky_secret %s
	}
}
`, site1, list, stickySecret, site2, a.Addr, stickySecret)), site1, site2)
	var ones, twos []*atk8Conn
	for i := range 3 {
		w1 := atk8Open(t, site1, "", true)
		require.Equal(t, "A", atk9Worker(w1, 10+i))
		ones = append(ones, w1)
		w2 := atk8Open(t, site2, "", true)
		require.Equal(t, "A", atk9Worker(w2, 20+i))
		twos = append(twos, w2)
	}
	write(b.Addr)
	for i, w := range ones {
		code, reason := atk9End(w, 5*time.Second)
		assert.Equal(t, 1001, code, "site 1 relay %d (%s)", i, reason)
	}
	for i, w := range twos {
		assert.True(t, atk9Alive(w, 30+i, 5*time.Second), "site 2 relay %d to A was cut by site 1's retirement", i)
	}
	require.Eventually(t, func() bool { return atk9Relays(t, e.AdminAddr) == float64(len(twos)) }, 10*time.Second, 20*time.Millisecond)
}
