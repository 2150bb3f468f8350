package socketioproxy_test

// Attacks on the event-driven WebSocket relay (internal/relay: epoll
// engine, frames forwarded byte for byte). Every test here speaks raw
// WebSocket frames over TCP, so that what the edge must parse (lengths,
// fragments, masks, control frames) is the attacker's choice.
//
// With EDGE_TEST_RECOVER set the suite bridges sessions instead of
// relaying them: these tests target the relay, so they skip themselves
// then.

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

func atk8Relay(t *testing.T) {
	t.Helper()
	if os.Getenv("EDGE_TEST_RECOVER") != "" {
		t.Skip("EDGE_TEST_RECOVER bridges sessions: these attacks target the event relay")
	}
}

// atk8Conn is a raw WebSocket client on a TCP connection.
type atk8Conn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

// atk8Open upgrades a raw TCP connection to a WebSocket-only Engine.IO
// session, reads the open packet and, unless ns is "", connects ns.
func atk8Open(t *testing.T, addr, cookie string, connect bool) *atk8Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	req := "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: " + addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	if cookie != "" {
		req += "Cookie: " + cookie + "\r\n"
	}
	_, err = io.WriteString(c, req+"\r\n")
	require.NoError(t, err)
	w := &atk8Conn{t: t, c: c, br: bufio.NewReader(c)}
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	res, err := http.ReadResponse(w.br, nil)
	require.NoError(t, err)
	require.Equal(t, 101, res.StatusCode)
	op, open := w.next(20 * time.Second)
	require.Equal(t, byte(1), op)
	require.True(t, strings.HasPrefix(string(open), "0{"), string(open))
	if connect {
		w.write(atk8Frame(0x81, []byte("40"), 0, true))
		w.until(20*time.Second, func(op byte, m []byte) bool { return strings.HasPrefix(string(m), "40{") })
	}
	return w
}

// atk8Frame makes a masked (or not) frame with b0 as its first byte and
// the payload length in the encoding lenBytes says: 0 the shortest, 2
// always 126 + 16 bits, 8 always 127 + 64 bits.
func atk8Frame(b0 byte, payload []byte, lenBytes int, masked bool) []byte {
	var maskBit byte
	if masked {
		maskBit = 0x80
	}
	out := []byte{b0}
	n := len(payload)
	switch {
	case lenBytes == 8 || (lenBytes == 0 && n >= 1<<16):
		out = append(out, maskBit|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	case lenBytes == 2 || (lenBytes == 0 && n >= 126):
		out = append(out, maskBit|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, maskBit|byte(n))
	}
	if !masked {
		return append(out, payload...)
	}
	key := []byte{0x37, 0xfa, 0x21, 0x3d}
	out = append(out, key...)
	for i, c := range payload {
		out = append(out, c^key[i&3])
	}
	return out
}

func (w *atk8Conn) write(b []byte) {
	w.t.Helper()
	_ = w.c.SetWriteDeadline(time.Now().Add(20 * time.Second))
	_, err := w.c.Write(b)
	require.NoError(w.t, err)
}

// writeSplit writes b in pieces of at most n bytes, one write each, with
// a short pause so that each travels in a segment of its own.
func (w *atk8Conn) writeSplit(b []byte, n int) {
	w.t.Helper()
	for len(b) > 0 {
		k := min(n, len(b))
		w.write(b[:k])
		b = b[k:]
		time.Sleep(2 * time.Millisecond)
	}
}

// readFrame reads one whole message (assembling fragments) or control
// frame from the edge.
func (w *atk8Conn) readFrame(d time.Duration) (byte, []byte, error) {
	_ = w.c.SetReadDeadline(time.Now().Add(d))
	var msg []byte
	var msgOp byte
	for {
		var h [2]byte
		if _, err := io.ReadFull(w.br, h[:]); err != nil {
			return 0, nil, err
		}
		n := int64(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(w.br, b[:]); err != nil {
				return 0, nil, err
			}
			n = int64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(w.br, b[:]); err != nil {
				return 0, nil, err
			}
			n = int64(binary.BigEndian.Uint64(b[:]))
		}
		if h[1]&0x80 != 0 {
			return 0, nil, fmt.Errorf("masked frame from the edge")
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(w.br, p); err != nil {
			return 0, nil, err
		}
		op := h[0] & 0xf
		if op >= 8 {
			return op, p, nil
		}
		if op != 0 {
			msgOp = op
		}
		msg = append(msg, p...)
		if h[0]&0x80 != 0 {
			return msgOp, msg, nil
		}
	}
}

// next reads the next message, answering Engine.IO pings.
func (w *atk8Conn) next(d time.Duration) (byte, []byte) {
	w.t.Helper()
	end := time.Now().Add(d)
	for {
		op, m, err := w.readFrame(time.Until(end))
		require.NoError(w.t, err)
		if op == 1 && string(m) == "2" {
			w.write(atk8Frame(0x81, []byte("3"), 0, true))
			continue
		}
		return op, m
	}
}

func (w *atk8Conn) until(d time.Duration, ok func(op byte, m []byte) bool) []byte {
	w.t.Helper()
	end := time.Now().Add(d)
	for {
		op, m := w.next(time.Until(end))
		if ok(op, m) {
			return m
		}
	}
}

// closeCode reads until the edge's close frame (or the end of the
// connection: -1) and returns its code.
func (w *atk8Conn) closeCode(d time.Duration) int {
	end := time.Now().Add(d)
	for {
		op, m, err := w.readFrame(time.Until(end))
		if err != nil {
			return -1
		}
		if op == 8 {
			if len(m) < 2 {
				return 1005
			}
			return int(binary.BigEndian.Uint16(m))
		}
	}
}

// echo8 sends an acknowledged echo of a text and waits for its answer.
func (w *atk8Conn) echo(id int) {
	w.t.Helper()
	w.write(atk8Frame(0x81, []byte(fmt.Sprintf(`42%d["echo","hi %d"]`, id, id)), 0, true))
	m := w.until(30*time.Second, func(op byte, m []byte) bool { return strings.HasPrefix(string(m), fmt.Sprintf("43%d[", id)) })
	require.Contains(w.t, string(m), fmt.Sprintf("hi %d", id))
}

// atk8Stack is a worker behind an edge with /admin for admins and the
// Caddyfile lines extra in socketio_proxy.
func atk8Stack(t *testing.T, extra string) (edge string, worker *testenv.FlaskWorker, admin string) {
	edge, worker, e := atk8StackEdge(t, extra)
	return edge, worker, e.AdminAddr
}

func atk8StackEdge(t *testing.T, extra string) (edge string, worker *testenv.FlaskWorker, e *testenv.Edge) {
	t.Helper()
	worker = testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1", SecretKey: "atk8-secret"})
	edge = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	e = testenv.StartEdge(t, atk8Config(edge, worker.Addr, extra), edge)
	return edge, worker, e
}

// atk8Config is the stacks' Caddyfile: the edge at edge, the worker at
// worker, extra lines in socketio_proxy.
func atk8Config(edge, worker, extra string) testenv.EdgeConfig {
	return testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	flask_session {
		secret_key atk8-secret
	}
	socketio_proxy {
		to %[2]s
		namespace /admin role admin
		%[3]s
	}
	reverse_proxy %[2]s
}
`, edge, worker, extra))
}

// A plain user's CONNECT to /admin, fragmented so that the packet header
// the edge must read is split across frames and TCP segments, with pings,
// zero-length fragments and non-canonical lengths among them, still gets
// the edge's CONNECT_ERROR: the worker never sees it, and the session's
// default namespace lives on on the event relay.
func TestAdversarialEventRelayFragmentedAdminConnectIsDenied(t *testing.T) {
	atk8Relay(t)
	edge, worker, admin := atk8Stack(t, "")
	user := testenv.Login(t, worker.URL(), "uma", "user")

	type frag struct {
		b0       byte
		payload  string
		lenBytes int
	}
	cases := map[string][]frag{
		"three fragments": {{0x01, "4", 0}, {0x00, "0/adm", 0}, {0x80, "in,", 0}},
		"pings between": {{0x01, "4", 2}, {0x89, "p", 0}, {0x00, "", 0}, {0x00, "0/", 8},
			{0x8a, "", 0}, {0x00, "adm", 0}, {0x89, "q", 0}, {0x80, "in,{}", 8}},
		"non-canonical single frame": {{0x81, "40/admin,", 8}},
		"byte by byte": {{0x01, "4", 0}, {0x00, "0", 0}, {0x00, "/", 0}, {0x00, "a", 0}, {0x00, "d", 0},
			{0x00, "m", 0}, {0x00, "i", 0}, {0x00, "n", 0}, {0x80, ",", 0}},
	}
	i := 0
	for name, frags := range cases {
		t.Run(name, func(t *testing.T) {
			i++
			w := atk8Open(t, edge, user, true)
			var all []byte
			for _, f := range frags {
				all = append(all, atk8Frame(f.b0, []byte(f.payload), f.lenBytes, true)...)
			}
			w.writeSplit(all, 3)
			atk8EventRelays(t, admin, 1)
			m := w.until(30*time.Second, func(op byte, m []byte) bool {
				return strings.HasPrefix(string(m), "44/admin,") || strings.HasPrefix(string(m), "40/admin,")
			})
			assert.True(t, strings.HasPrefix(string(m), "44/admin,"), "a user connected /admin: %s", m)
			w.echo(i)
		})
	}
	assert.NotContains(t, worker.Output(), "namespace=/admin", "a denied CONNECT reached the worker")
}

// A binary event whose attachment comes fragmented, with pings between
// its fragments and non-canonical lengths, reaches the worker whole: the
// worker's ack carries exactly the bytes sent, as through gorilla.
func TestAdversarialEventRelayFragmentedAttachmentArrivesWhole(t *testing.T) {
	atk8Relay(t)
	edge, _, admin := atk8Stack(t, "")
	w := atk8Open(t, edge, "", true)
	atk8EventRelays(t, admin, 1)

	payload := make([]byte, 3000)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	var all []byte
	all = append(all, atk8Frame(0x81, []byte(`451-7["echo",{"_placeholder":true,"num":0}]`), 8, true)...)
	all = append(all, atk8Frame(0x02, payload[:1], 2, true)...)
	all = append(all, atk8Frame(0x89, []byte("ping"), 0, true)...)
	all = append(all, atk8Frame(0x00, nil, 8, true)...)
	all = append(all, atk8Frame(0x00, payload[1:1500], 8, true)...)
	all = append(all, atk8Frame(0x8a, []byte("pong"), 0, true)...)
	all = append(all, atk8Frame(0x80, payload[1500:], 0, true)...)
	w.writeSplit(all, 700)

	head := w.until(30*time.Second, func(op byte, m []byte) bool { return strings.HasPrefix(string(m), "461-7[") })
	assert.Contains(t, string(head), `"_placeholder":true`)
	for {
		op, m := w.next(30 * time.Second)
		if op == 0xa || op == 9 {
			continue
		}
		require.Equal(t, byte(2), op, "want the attachment, got %q", m)
		assert.Equal(t, payload, m, "the attachment the worker got differs from the one sent")
		break
	}
	w.echo(8)
}

// A frame that announces more than max_payload is refused from its
// header: the client gets 1009 while it is still trickling the payload,
// and nothing of it reaches the worker; a 64-bit length with its top bit
// set likewise ends the session.
func TestAdversarialEventRelayHugeAnnouncedLengthIsRefusedFromTheHeader(t *testing.T) {
	atk8Relay(t)
	edge, worker, _ := atk8Stack(t, "max_payload 10000")
	for _, tc := range []struct {
		name string
		hdr  []byte
	}{
		{"2^40 text", append([]byte{0x81, 0x80 | 127}, binary.BigEndian.AppendUint64(nil, 1<<40)...)},
		{"top bit", append([]byte{0x82, 0x80 | 127}, binary.BigEndian.AppendUint64(nil, 1<<63|5)...)},
		{"fragments over the limit", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := atk8Open(t, edge, "", true)
			start := time.Now()
			if tc.hdr == nil {
				// 11 fragments of 1000 bytes: the 11th crosses the limit.
				chunk := []byte(strings.Repeat("x", 1000))
				w.write(atk8Frame(0x01, append([]byte(`42["echo","`), chunk[11:]...), 0, true))
				for range 9 {
					w.write(atk8Frame(0x00, chunk, 0, true))
				}
				w.write(atk8Frame(0x80, append(chunk[:998], '"', ']'), 0, true))
			} else {
				w.write(append(tc.hdr, 1, 2, 3, 4))
				go func() {
					for range 50 {
						if _, err := w.c.Write([]byte("x")); err != nil {
							return
						}
						time.Sleep(100 * time.Millisecond)
					}
				}()
			}
			code := w.closeCode(30 * time.Second)
			if tc.hdr != nil {
				assert.Less(t, time.Since(start), 4*time.Second, "the edge waited for the payload")
			}
			assert.Contains(t, []int{1009, 1002}, code)
		})
	}
	assert.NotContains(t, worker.Output(), "xxxxxxxxxx")
}

// atk8Process reads a process_ metric of the edge.
func atk8Process(t *testing.T, admin, name string) float64 {
	t.Helper()
	res, err := http.Get("http://" + admin + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, name+" ") {
			v, err := strconv.ParseFloat(strings.TrimPrefix(line, name+" "), 64)
			require.NoError(t, err)
			return v
		}
	}
	t.Fatalf("no %s in the edge's metrics", name)
	return 0
}

// Connections that churn through the event relay and vanish mid-frame
// (RST after half a header, after half a payload, during the close)
// leave no file descriptor and no relay behind at the edge.
func TestAdversarialEventRelayChurnLeaksNoDescriptors(t *testing.T) {
	atk8Relay(t)
	edge, _, admin := atk8Stack(t, "")
	warm := atk8Open(t, edge, "", true)
	warm.echo(1)
	baseline := atk8Process(t, admin, "process_open_fds")

	const n = 400
	for i := range n {
		w := atk8Open(t, edge, "", i%2 == 0)
		switch i % 4 {
		case 0:
			w.write([]byte{0x81, 0x80 | 126}) // half a header
		case 1:
			w.write(atk8Frame(0x81, []byte(`42["echo","`+strings.Repeat("y", 3000)+`"]`), 0, true)[:1500])
		case 2:
			w.write(atk8Frame(0x88, []byte{0x03, 0xe8}, 0, true)) // close, then vanish
		case 3:
			w.write(atk8Frame(0x89, []byte("p"), 0, true))
		}
		if tc, ok := w.c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST
		}
		w.c.Close()
	}
	var relays, fds float64
	require.Eventually(t, func() bool {
		relays = scrape(t, admin)[`caddy_socketio_websocket_relays{engine="event"}`]
		fds = atk8Process(t, admin, "process_open_fds")
		return relays <= 1 && fds <= baseline+5
	}, 60*time.Second, 100*time.Millisecond, "after %d vanished clients: %v relays, %v fds (baseline %v)", n, relays, fds, baseline)
	warm.echo(2)
}

// Clients that never read while the worker streams to them (broadcasts
// to their room) cost the edge no memory: the event relay stops reading
// the worker when a client's socket is full, and each client still gets
// every message once it reads.
func TestAdversarialEventRelayNonReadingClientHoldsNoMemory(t *testing.T) {
	atk8Relay(t)
	edge, _, admin := atk8Stack(t, "")
	var ws []*atk8Conn
	for i := range 3 {
		w := atk8Open(t, edge, "", true)
		if tc, ok := w.c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4096)
		}
		w.write(atk8Frame(0x81, []byte(fmt.Sprintf(`42%d["join","flood"]`, i+1)), 0, true))
		w.until(30*time.Second, func(op byte, m []byte) bool { return strings.HasPrefix(string(m), fmt.Sprintf("43%d[", i+1)) })
		ws = append(ws, w)
	}
	sender := atk8Open(t, edge, "", true)
	base := atk8Process(t, admin, "process_resident_memory_bytes")
	big := strings.Repeat("z", 60000)
	const n = 8
	for i := range n {
		sender.write(atk8Frame(0x81, []byte(fmt.Sprintf(`42%d["broadcast",{"room":"flood","data":"%d%s"}]`, 10+i, i, big)), 0, true))
		sender.until(60*time.Second, func(op byte, m []byte) bool { return strings.HasPrefix(string(m), fmt.Sprintf("43%d[", 10+i)) })
	}
	peak := max(base, atk8Process(t, admin, "process_resident_memory_bytes"))
	t.Logf("edge RSS %0.f MiB before, %0.f MiB after 3 clients did not read %d broadcasts of 60 kB", base/(1<<20), peak/(1<<20), n)
	assert.Less(t, peak-base, float64(16<<20), "the edge buffered what the clients did not read")
	for _, w := range ws {
		got := 0
		w.until(60*time.Second, func(op byte, m []byte) bool {
			if strings.HasPrefix(string(m), `42["broadcast"`) {
				require.True(t, strings.Contains(string(m), fmt.Sprintf(`"data":"%d%s`, got, big[:100])),
					"broadcast %d: %.60s", got, m)
				got++
			}
			return got == n
		})
	}
}

// A graceful stop while 100 event-relayed sessions are busy both ways
// (the worker's acks are often mid-frame) gives every client, in order,
// the Engine.IO close packet at a message boundary and then 1001: no
// frame is cut, none is interleaved with the edge's own.
func TestAdversarialEventRelayStopWhileBusyClosesEveryClientCleanly(t *testing.T) {
	atk8Relay(t)
	edge, _, e := atk8StackEdge(t, "")
	const n = 100
	type end struct {
		last  string // the last text message before the close
		code  int
		err   error
		acks  int
		after int // text messages after the close packet
	}
	ends := make(chan end, n)
	stop := make(chan struct{})
	for i := range n {
		w := atk8Open(t, edge, "", true)
		go func() {
			pad := strings.Repeat("b", 4000)
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				case <-time.After(30 * time.Millisecond):
				}
				_ = w.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if _, err := w.c.Write(atk8Frame(0x81, []byte(fmt.Sprintf(`42%d["echo","%s"]`, j, pad)), 0, true)); err != nil {
					return
				}
			}
		}()
		go func() {
			var r end
			seenClose := false
			for {
				op, m, err := w.readFrame(60 * time.Second)
				if err != nil {
					r.err, r.code = err, -1
					ends <- r
					return
				}
				switch {
				case op == 8:
					r.code = 1005
					if len(m) >= 2 {
						r.code = int(binary.BigEndian.Uint16(m))
					}
					ends <- r
					return
				case op == 1:
					if seenClose {
						r.after++
					}
					if string(m) == "1" {
						seenClose = true
					}
					if strings.HasPrefix(string(m), "43") {
						r.acks++
					}
					r.last = string(m[:min(len(m), 20)])
				}
			}
		}()
		_ = i
	}
	time.Sleep(2 * time.Second) // let traffic flow both ways
	atk8EventRelays(t, e.AdminAddr, n/2+1)
	took := e.Stop(t)
	t.Logf("edge exited %v after SIGTERM", took)
	close(stop)
	bad := 0
	for range n {
		select {
		case r := <-ends:
			if r.last != "1" || r.code != 1001 || r.after != 0 {
				bad++
				if bad <= 5 {
					t.Errorf("a client ended with last text %q, close %d (%v), %d messages after the close packet, %d acks", r.last, r.code, r.err, r.after, r.acks)
				}
			}
		case <-time.After(60 * time.Second):
			t.Fatal("a client never saw its connection end")
		}
	}
	assert.Zero(t, bad, "clients without a clean farewell")
}

// Under rate_limit messages 5/m, fragmenting each message (many frames,
// pings and zero-length fragments between them) buys no extra message:
// after the CONNECT, echoes sent one at a time are answered 4 times, then
// the edge closes the session; and the pings themselves never count (the
// 4 are answered although 30 pings came first and more between).
func TestAdversarialEventRelayFragmentsAndPingsDoNotBypassTheMessageRate(t *testing.T) {
	atk8Relay(t)
	edge, _, admin := atk8Stack(t, "rate_limit messages 5/m")
	w := atk8Open(t, edge, "", false)
	atk8EventRelays(t, admin, 1)
	for range 30 {
		w.write(atk8Frame(0x89, []byte("x"), 0, true))
	}
	w.write(atk8Frame(0x81, []byte("40"), 0, true)) // message 1
	w.until(30*time.Second, func(op byte, m []byte) bool { return strings.HasPrefix(string(m), "40{") })
	acks, code := 0, 0
	for i := 0; i < 12 && code == 0; i++ {
		msg := fmt.Sprintf(`42%d["echo","frag %d"]`, 50+i, i)
		var all []byte
		all = append(all, atk8Frame(0x01, []byte(msg[:1]), 0, true)...)
		for j := 1; j < len(msg)-1; j++ {
			all = append(all, atk8Frame(0x00, []byte(msg[j:j+1]), 0, true)...)
			all = append(all, atk8Frame(0x89, nil, 0, true)...)
			all = append(all, atk8Frame(0x00, nil, 0, true)...)
		}
		all = append(all, atk8Frame(0x80, []byte(msg[len(msg)-1:]), 0, true)...)
		_ = w.c.SetWriteDeadline(time.Now().Add(20 * time.Second))
		_, _ = w.c.Write(all) // the edge may close before it has read them all
		want := fmt.Sprintf("43%d[", 50+i)
		end := time.Now().Add(30 * time.Second)
		for code == 0 {
			op, m, err := w.readFrame(time.Until(end))
			if err != nil {
				code = -1
				break
			}
			if op == 8 {
				code = 1005
				if len(m) >= 2 {
					code = int(binary.BigEndian.Uint16(m))
					t.Logf("close reason %q", m[2:])
				}
				break
			}
			if op == 1 && string(m) == "2" {
				w.write(atk8Frame(0x81, []byte("3"), 0, true))
			}
			if op == 1 && strings.HasPrefix(string(m), want) {
				acks++
				break
			}
		}
	}
	t.Logf("%d acks, then close %d", acks, code)
	assert.Equal(t, 4, acks, "echoes answered under 5 messages a minute, CONNECT included")
	assert.Equal(t, 1008, code)
}

// A config reload while 40 event-relayed sessions are busy keeps each of
// them (every echo answered, no close, no garbled frame), and a
// max_payload lowered by the reload applies to their next message.
func TestAdversarialEventRelayReloadWhileBusy(t *testing.T) {
	atk8Relay(t)
	edge, worker, e := atk8StackEdge(t, "")
	config := func(extra string) testenv.EdgeConfig { return atk8Config(edge, worker.Addr, extra) }
	const n = 40
	type result struct {
		acks int
		err  error
	}
	results := make(chan result, n)
	stop := make(chan struct{})
	var ws []*atk8Conn
	for range n {
		ws = append(ws, atk8Open(t, edge, "", true))
	}
	atk8EventRelays(t, e.AdminAddr, n)
	for _, w := range ws {
		go func() {
			r := result{}
			pad := strings.Repeat("r", 500)
			for j := 0; ; j++ {
				select {
				case <-stop:
					results <- r
					return
				default:
				}
				_ = w.c.SetWriteDeadline(time.Now().Add(20 * time.Second))
				if _, err := w.c.Write(atk8Frame(0x81, []byte(fmt.Sprintf(`42%d["echo","%s"]`, j, pad)), 0, true)); err != nil {
					r.err = err
					results <- r
					return
				}
				want := fmt.Sprintf("43%d[", j)
				for {
					op, m, err := w.readFrame(30 * time.Second)
					if err == nil && op == 8 {
						err = fmt.Errorf("closed: %q", m)
					}
					if err == nil && op == 1 && !strings.HasPrefix(string(m), "43") && string(m) != "2" {
						err = fmt.Errorf("unexpected %.40q", m)
					}
					if err != nil {
						r.err = err
						results <- r
						return
					}
					if string(m) == "2" {
						_, _ = w.c.Write(atk8Frame(0x81, []byte("3"), 0, true))
					}
					if strings.HasPrefix(string(m), want) {
						break
					}
				}
				r.acks++
			}
		}()
	}
	time.Sleep(time.Second)
	e.Reload(t, config("max_payload 50000"))
	time.Sleep(time.Second)
	e.Reload(t, config("max_payload 1000"))
	time.Sleep(2 * time.Second)
	close(stop)
	for range n {
		select {
		case r := <-results:
			assert.NoError(t, r.err, "a session broke across the reloads after %d echoes", r.acks)
			assert.Greater(t, r.acks, 0)
		case <-time.After(90 * time.Second):
			t.Fatal("a session hung across the reloads")
		}
	}
	// The lowered max_payload holds on the sessions opened before it.
	w := ws[0]
	w.write(atk8Frame(0x81, []byte(`42["echo","`+strings.Repeat("q", 2000)+`"]`), 0, true))
	assert.Equal(t, 1009, w.closeCode(30*time.Second))
}

// When an admin's session cookie outlives max_age while the worker is
// streaming large broadcasts to her slow-reading WebSocket, the edge's
// injected "41/admin," lands between two frames, never inside one: every
// frame the client reads is whole (each broadcast intact), the DISCONNECT
// arrives, and the worker is told too.
func TestAdversarialEventRelayWithdrawalNeverLandsInsideAFrame(t *testing.T) {
	atk8Relay(t)
	worker := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1", SecretKey: "atk8-secret"})
	edge := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	e := testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	flask_session {
		secret_key atk8-secret
		max_age 5s
	}
	socketio_proxy {
		to %[2]s
		namespace /admin role admin
	}
	reverse_proxy %[2]s
}
`, edge, worker.Addr)), edge)
	ada := testenv.Login(t, worker.URL(), "ada", "admin")
	signed := time.Now()

	a := atk8Open(t, edge, ada, true)
	if tc, ok := a.c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096)
	}
	a.br = bufio.NewReaderSize(a.c, 16)
	a.write(atk8Frame(0x81, []byte("40/admin,"), 0, true))
	a.until(30*time.Second, func(op byte, m []byte) bool { return strings.HasPrefix(string(m), "40/admin,{") })
	a.write(atk8Frame(0x81, []byte(`421["join","big"]`), 0, true))
	a.until(30*time.Second, func(op byte, m []byte) bool { return strings.HasPrefix(string(m), "431[") })
	atk8EventRelays(t, e.AdminAddr, 1)
	require.Less(t, time.Since(signed), 4*time.Second, "too slow to mean anything")

	b := atk8Open(t, edge, "", true)
	stop := make(chan struct{})
	defer close(stop)
	data := strings.Repeat("d", 6000)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = b.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := b.c.Write(atk8Frame(0x81, []byte(fmt.Sprintf(`42["broadcast",{"room":"big","data":"%d-%s"}]`, i, data)), 0, true)); err != nil {
				return
			}
			// Drain what comes back to b (acks are not asked for).
			_ = b.c.SetReadDeadline(time.Now().Add(time.Millisecond))
			var sink [4096]byte
			_, _ = b.c.Read(sink[:])
			time.Sleep(50 * time.Millisecond)
		}
	}()

	broadcasts, withdrawnAt := 0, time.Time{}
	end := time.Now().Add(40 * time.Second)
	for time.Now().Before(end) {
		op, m, err := a.readFrame(time.Until(end))
		require.NoError(t, err, "after %d broadcasts", broadcasts)
		switch {
		case op == 9 || op == 10:
		case op == 1 && string(m) == "2":
			a.write(atk8Frame(0x81, []byte("3"), 0, true))
		case op == 1 && string(m) == "41/admin,":
			withdrawnAt = time.Now()
		case op == 1 && strings.HasPrefix(string(m), `42["broadcast",`):
			require.True(t, strings.HasSuffix(string(m), `}]`) && strings.Contains(string(m), "-"+data+`"`),
				"broadcast %d garbled: %.80q ... %.80q", broadcasts, m, m[max(0, len(m)-80):])
			broadcasts++
		default:
			t.Fatalf("a frame that is no packet of the worker's or the edge's (op %d): %.120q", op, m)
		}
		if !withdrawnAt.IsZero() && time.Since(withdrawnAt) > 2*time.Second {
			break
		}
		time.Sleep(time.Millisecond) // a slow reader
	}
	require.False(t, withdrawnAt.IsZero(), "no DISCONNECT of /admin within 40 s (%d broadcasts read)", broadcasts)
	t.Logf("/admin withdrawn %v after signing; %d broadcasts read whole", withdrawnAt.Sub(signed), broadcasts)
	assert.Greater(t, broadcasts, 5)
	require.Eventually(t, func() bool { return strings.Contains(worker.Output(), "disconnect namespace=/admin") },
		20*time.Second, 50*time.Millisecond, "the worker was not told of the withdrawal")
}

// Frames that break the protocol get, as through gorilla, exactly one
// close frame (1002), then the end of the connection; the worker's
// session ends too. A client's own close gets at most one close frame.
//
// Found by an attack session: the event relay sent 1002 and then 1001
// (flow.protocolError queued the 1002, pair.end the 1001 behind it).
func TestAdversarialEventRelayBrokenFramesGetOneCloseFrame(t *testing.T) {
	atk8Relay(t)
	edge, worker, _ := atk8Stack(t, "")
	for _, tc := range []struct {
		name  string
		frame []byte
		code  int
	}{
		{"RSV1", atk8Frame(0xc1, []byte("42[]"), 0, true), 1002},
		{"RSV3", atk8Frame(0x91, []byte("42[]"), 0, true), 1002},
		{"opcode 3", atk8Frame(0x83, []byte("x"), 0, true), 1002},
		{"opcode 7", atk8Frame(0x87, []byte("x"), 0, true), 1002},
		{"opcode 11", atk8Frame(0x8b, []byte("x"), 0, true), 1002},
		{"opcode 15", atk8Frame(0x8f, []byte("x"), 0, true), 1002},
		{"unmasked", atk8Frame(0x81, []byte("42[]"), 0, false), 1002},
		{"continuation first", atk8Frame(0x80, []byte("42[]"), 0, true), 1002},
		{"text inside a message", append(atk8Frame(0x02, []byte("ab"), 0, true), atk8Frame(0x81, []byte("42[]"), 0, true)...), 1002},
		{"fragmented ping", atk8Frame(0x09, []byte("p"), 0, true), 1002},
		{"long ping", atk8Frame(0x89, make([]byte, 126), 0, true), 1002},
		{"close with bad code", atk8Frame(0x88, []byte{0x03, 0xe7}, 0, true), 1002},
		{"close with bad utf-8", atk8Frame(0x88, []byte{0x03, 0xe8, 0xff, 0xfe}, 0, true), 1002},
		{"close with one byte", atk8Frame(0x88, []byte{0x03}, 0, true), 1005},
		{"close 4001", atk8Frame(0x88, []byte{0x0f, 0xa1, 'b', 'y', 'e'}, 0, true), 4001},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := atk8Open(t, edge, "", true)
			w.write(tc.frame)
			closes := []int{}
			end := time.Now().Add(30 * time.Second)
			for {
				op, m, err := w.readFrame(time.Until(end))
				if err != nil {
					require.NotContains(t, err.Error(), "timeout", "the edge kept the connection open")
					break
				}
				if op == 8 {
					code := 1005
					if len(m) >= 2 {
						code = int(binary.BigEndian.Uint16(m))
					}
					closes = append(closes, code)
					if tc.code != 1002 {
						// Our close: answer it as a client does.
						_, _ = w.c.Write(atk8Frame(0x88, m, 0, true))
					}
				}
			}
			if tc.code == 1002 {
				assert.Equal(t, []int{1002}, closes, "close frames the client got: one, as gorilla sends (its WriteControl refuses a second close)")
			} else {
				// The client's own close ends its connection at once,
				// on either relay (see Linger): at most the worker's
				// answer, never a close of the edge's after it.
				assert.LessOrEqual(t, len(closes), 1, "close frames the client got: %v", closes)
			}
		})
	}
	require.Eventually(t, func() bool {
		return strings.Count(worker.Output(), "disconnect namespace=/ ") >= 15
	}, 30*time.Second, 50*time.Millisecond, "worker sessions left open")
}

// A worker drained through the admin API ends its event-relayed sessions
// as it does relayed ones, while the worker streams large broadcasts to
// them: each client reads only whole frames, then the Engine.IO close
// packet, then one close frame (1001, the drain's reason), within
// drain_timeout and a margin.
func TestAdversarialEventRelayDrainEndsBusySessionsCleanly(t *testing.T) {
	atk8Relay(t)
	worker := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1"})
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	edge := testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%s {
	bind 127.0.0.1
	socketio_proxy {
		to %s
		drain_timeout 2s
	}
}
`, addr, worker.Addr)), addr)
	const n = 20
	var ws []*atk8Conn
	for i := range n {
		w := atk8Open(t, addr, "", true)
		if tc, ok := w.c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4096)
		}
		w.br = bufio.NewReaderSize(w.c, 16)
		w.write(atk8Frame(0x81, []byte(fmt.Sprintf(`42%d["join","big"]`, i+1)), 0, true))
		w.until(30*time.Second, func(op byte, m []byte) bool { return strings.HasPrefix(string(m), fmt.Sprintf("43%d[", i+1)) })
		ws = append(ws, w)
	}
	atk8EventRelays(t, edge.AdminAddr, n)
	data := strings.Repeat("d", 3000)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			w := ws[i%n]
			_ = w.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := w.c.Write(atk8Frame(0x81, []byte(fmt.Sprintf(`42["broadcast",{"room":"big","data":"%s"}]`, data)), 0, true)); err != nil {
				return
			}
			time.Sleep(30 * time.Millisecond)
		}
	}()
	type end struct {
		last  string
		code  int
		text  string
		err   error
		bcast int
	}
	ends := make(chan end, n)
	for _, w := range ws {
		go func() {
			var r end
			for {
				op, m, err := w.readFrame(60 * time.Second)
				if err != nil {
					r.err, r.code = err, -1
					ends <- r
					return
				}
				switch {
				case op == 8:
					r.code = 1005
					if len(m) >= 2 {
						r.code, r.text = int(binary.BigEndian.Uint16(m)), string(m[2:])
					}
					ends <- r
					return
				case op == 1 && strings.HasPrefix(string(m), `42["broadcast",`):
					if !strings.Contains(string(m), `"data":"`+data+`"`) {
						r.err = fmt.Errorf("garbled broadcast %.60q", m)
					}
					r.bcast++
				case op == 1 && string(m) == "2":
					_, _ = w.c.Write(atk8Frame(0x81, []byte("3"), 0, true))
				case op == 1 && (string(m) == "1" || strings.HasPrefix(string(m), "43")):
				case op == 9 || op == 10:
				default:
					r.err = fmt.Errorf("unexpected frame op %d %.60q", op, m)
				}
				if op == 1 {
					r.last = string(m[:min(len(m), 20)])
				}
				time.Sleep(time.Millisecond) // a slow reader
			}
		}()
	}
	require.Eventually(t, func() bool {
		return scrape(t, edge.AdminAddr)[`caddy_socketio_messages_total{direction="upstream_to_client",transport="websocket"}`] > 100
	}, 30*time.Second, 50*time.Millisecond, "no traffic")
	status, body := adminDo(t, edge, http.MethodPost, "/socketio/upstreams/"+worker.Addr+"/drain")
	require.Equal(t, 200, status, body)
	drained := time.Now()
	for range n {
		select {
		case r := <-ends:
			assert.NoError(t, r.err)
			assert.Equal(t, "1", r.last, "the Engine.IO close packet comes last (%d broadcasts read)", r.bcast)
			assert.Equal(t, 1001, r.code, r.text)
		case <-time.After(60 * time.Second):
			t.Fatal("a drained session was never closed")
		}
	}
	took := time.Since(drained)
	t.Logf("sessions closed %v after the drain", took)
	assert.Less(t, took, 2*time.Second+15*time.Second)
}

// A plain user who never reads, and alternates a CONNECT to /admin (the
// edge denies it) with an event to /admin (the edge answers it with a
// DISCONNECT of its own, once per CONNECT): what the edge owes the client
// must wait in the client's socket and, past it, stop the edge reading
// the client, as through gorilla, whose Injector writes block the
// client's reader. The edge's heap must not grow with what the client
// sends.
//
// Found by an attack session: the event relay queued what it owed a
// non-reading client without bound and went on reading it (22 MiB of
// heap in 25 s on one connection). A flow now stops reading its side
// while more than maxOwed bytes of the edge's own frames wait for it.
func TestAdversarialEventRelayInjectionsToANonReadingClientAreBounded(t *testing.T) {
	atk8Relay(t)
	edge, worker, admin := atk8Stack(t, "")
	user := testenv.Login(t, worker.URL(), "uma", "user")
	w := atk8Open(t, edge, user, true)
	if tc, ok := w.c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096)
	}
	atk8EventRelays(t, admin, 1)
	heap := func() float64 { return atk8Process(t, admin, "go_memstats_heap_inuse_bytes") }
	base := heap()
	var batch []byte
	for range 200 {
		batch = append(batch, atk8Frame(0x81, []byte("40/admin,"), 0, true)...)
		batch = append(batch, atk8Frame(0x81, []byte(`42/admin,["x"]`), 0, true)...)
	}
	sent := 0
	stopAt := time.Now().Add(25 * time.Second)
	for time.Now().Before(stopAt) {
		_ = w.c.SetWriteDeadline(stopAt)
		if _, err := w.c.Write(batch); err != nil {
			break
		}
		sent += len(batch)
	}
	grown := heap() - base
	t.Logf("client sent %d kB without reading; edge heap in use grew %.1f MiB", sent>>10, grown/(1<<20))
	assert.Less(t, grown, float64(8<<20), "the edge queued what a non-reading client is owed without bound")
}

// atk8EventRelays waits until at least n relays run on the event engine:
// the gauge counts a relay once relay.Start has returned, a moment after
// the client may have read its open packet.
func atk8EventRelays(t *testing.T, admin string, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		return scrape(t, admin)[`caddy_socketio_websocket_relays{engine="event"}`] >= float64(n)
	}, 10*time.Second, 10*time.Millisecond, "fewer than %d relays on the event engine", n)
}
