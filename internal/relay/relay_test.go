package relay

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testPair is a client talking through a relay to a worker: client ⇄
// relay ⇄ worker, all real WebSocket connections on loopback TCP.
type testPair struct {
	client *websocket.Conn // the client's end
	worker *websocket.Conn // the worker's end
	done   chan error      // the relay's result
}

// forEachEngine runs test against the goroutine relay (Relay) and the
// event engine (Start taking the connections over).
func forEachEngine(t *testing.T, test func(t *testing.T, events bool)) {
	t.Helper()
	for _, events := range []bool{false, true} {
		name := "goroutines"
		if events {
			name = "events"
		}
		t.Run(name, func(t *testing.T) { test(t, events) })
	}
}

// rig is an edge relaying the WebSockets of its clients to a worker,
// with Relay or, for events, with Start, which it checks took the
// connections over.
type rig struct {
	edge        *httptest.Server
	workerConns chan *websocket.Conn
	done        chan error // the relays' results
}

func newRig(t testing.TB, opt Options, events bool, conns int) *rig {
	t.Helper()
	r := &rig{workerConns: make(chan *websocket.Conn, conns), done: make(chan error, conns)}
	worker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		c, err := (&websocket.Upgrader{}).Upgrade(w, req, nil)
		require.NoError(t, err)
		r.workerConns <- c
	}))
	t.Cleanup(worker.Close)
	r.edge = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		up, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(worker.URL, "http"), nil)
		require.NoError(t, err)
		down, err := (&websocket.Upgrader{}).Upgrade(w, req, nil)
		require.NoError(t, err)
		if !events {
			r.done <- Relay(down, up, opt)
			return
		}
		before := takenOver.Load()
		Start(down, up, opt, func(err error) { r.done <- err })
		if runtime.GOOS == "linux" {
			assert.Greater(t, takenOver.Load(), before, "the event engine did not take the connections")
		}
	}))
	t.Cleanup(r.edge.Close)
	return r
}

// connect opens a client's WebSocket through the edge.
func (r *rig) connect(t testing.TB) *testPair {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(r.edge.URL, "http"), nil)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	p := &testPair{client: c, worker: <-r.workerConns, done: r.done}
	t.Cleanup(func() { p.worker.Close() })
	return p
}

func newPair(t *testing.T, opt Options, events bool) *testPair {
	t.Helper()
	return newRig(t, opt, events, 1).connect(t)
}

func TestMessagesCrossInBothDirectionsWithTheirType(t *testing.T) {
	forEachEngine(t, func(t *testing.T, events bool) {
		p := newPair(t, Options{}, events)
		require.NoError(t, p.client.WriteMessage(websocket.TextMessage, []byte(`42["echo","hi"]`)))
		mt, msg, err := p.worker.ReadMessage()
		require.NoError(t, err)
		assert.Equal(t, websocket.TextMessage, mt)
		assert.Equal(t, `42["echo","hi"]`, string(msg))

		require.NoError(t, p.worker.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}))
		mt, msg, err = p.client.ReadMessage()
		require.NoError(t, err)
		assert.Equal(t, websocket.BinaryMessage, mt)
		assert.Equal(t, []byte{1, 2, 3}, msg)
	})
}

func TestPingFromTheWorkerReachesTheClientAndItsPongReturns(t *testing.T) {
	forEachEngine(t, func(t *testing.T, events bool) {
		p := newPair(t, Options{}, events)
		pings := make(chan string, 1)
		p.client.SetPingHandler(func(data string) error {
			pings <- data
			return p.client.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		})
		pongs := make(chan string, 1)
		p.worker.SetPongHandler(func(data string) error { pongs <- data; return nil })
		go func() { _, _, _ = p.client.ReadMessage() }()
		go func() { _, _, _ = p.worker.ReadMessage() }()

		require.NoError(t, p.worker.WriteControl(websocket.PingMessage, []byte("p1"), time.Now().Add(time.Second)))
		assert.Equal(t, "p1", <-pings)
		assert.Equal(t, "p1", <-pongs)
	})
}

// The worker's close code and reason reach the client, and the relay
// ends with both connections closed.
func TestCloseCodePassesThrough(t *testing.T) {
	forEachEngine(t, func(t *testing.T, events bool) {
		p := newPair(t, Options{}, events)
		msg := websocket.FormatCloseMessage(4001, "bye")
		require.NoError(t, p.worker.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)))
		_, _, err := p.client.ReadMessage()
		var ce *websocket.CloseError
		require.True(t, errors.As(err, &ce), "got %v", err)
		assert.Equal(t, 4001, ce.Code)
		assert.Equal(t, "bye", ce.Text)

		select {
		case err := <-p.done:
			assert.True(t, errors.As(err, &ce))
		case <-time.After(10 * time.Second):
			t.Fatal("relay did not end after the close")
		}
	})
}

// A client message over MaxMessage never reaches the worker; both get
// 1009. (gorilla writes the client's close itself, with no reason text,
// as it reads the frame header that crosses the limit.)
func TestOversizedClientMessageClosesWith1009(t *testing.T) {
	forEachEngine(t, func(t *testing.T, events bool) {
		p := newPair(t, Options{MaxMessage: 16}, events)
		require.NoError(t, p.client.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("x", 17))))

		_, _, err := p.client.ReadMessage()
		var ce *websocket.CloseError
		require.True(t, errors.As(err, &ce), "got %v", err)
		assert.Equal(t, websocket.CloseMessageTooBig, ce.Code)

		_, msg, err := p.worker.ReadMessage()
		require.True(t, errors.As(err, &ce), "the worker got %q, %v", msg, err)
		assert.Equal(t, websocket.CloseMessageTooBig, ce.Code)
	})
}

// When the worker's connection drops without a close frame, the client
// is told the worker went away.
func TestWorkerDroppingTellsTheClientGoingAway(t *testing.T) {
	forEachEngine(t, func(t *testing.T, events bool) {
		p := newPair(t, Options{}, events)
		p.worker.NetConn().Close()
		_, _, err := p.client.ReadMessage()
		var ce *websocket.CloseError
		require.True(t, errors.As(err, &ce), "got %v", err)
		assert.Equal(t, websocket.CloseGoingAway, ce.Code)
	})
}

func TestFilterRewritesChosenMessagesAndStreamsTheRest(t *testing.T) {
	forEachEngine(t, func(t *testing.T, events bool) {
		upper := &Filter{
			PeekLen: 2,
			Peek:    func(p []byte) bool { return string(p) == "40" },
			Rewrite: func(msg []byte) ([]byte, error) { return []byte(strings.ToUpper(string(msg))), nil },
		}
		p := newPair(t, Options{FromClient: upper, FromUpstream: upper}, events)
		for _, tc := range []struct{ sent, want string }{
			{"40/admin,", "40/ADMIN,"},
			{"42[\"echo\"]", "42[\"echo\"]"},
			{"4", "4"}, // shorter than PeekLen
			{"40", "40"},
		} {
			require.NoError(t, p.client.WriteMessage(websocket.TextMessage, []byte(tc.sent)))
			_, msg, err := p.worker.ReadMessage()
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(msg), "client → worker %q", tc.sent)

			require.NoError(t, p.worker.WriteMessage(websocket.TextMessage, []byte(tc.sent)))
			_, msg, err = p.client.ReadMessage()
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(msg), "worker → client %q", tc.sent)
		}
		// Binary messages are never filtered.
		require.NoError(t, p.client.WriteMessage(websocket.BinaryMessage, []byte("40/admin,")))
		mt, msg, err := p.worker.ReadMessage()
		require.NoError(t, err)
		assert.Equal(t, websocket.BinaryMessage, mt)
		assert.Equal(t, "40/admin,", string(msg))
	})
}

// A message the filter refuses never reaches the worker; both sides get
// 1008 with the reason.
func TestFilterRefusalClosesWith1008(t *testing.T) {
	forEachEngine(t, func(t *testing.T, events bool) {
		p := newPair(t, Options{FromClient: &Filter{
			PeekLen: 1,
			Peek:    func([]byte) bool { return true },
			Rewrite: func([]byte) ([]byte, error) { return nil, errors.New("malformed Socket.IO packet") },
		}}, events)
		require.NoError(t, p.client.WriteMessage(websocket.TextMessage, []byte("4\xff")))
		_, _, err := p.client.ReadMessage()
		var ce *websocket.CloseError
		require.True(t, errors.As(err, &ce), "got %v", err)
		assert.Equal(t, websocket.ClosePolicyViolation, ce.Code)
		assert.Equal(t, "malformed Socket.IO packet", ce.Text)

		_, msg, err := p.worker.ReadMessage()
		require.True(t, errors.As(err, &ce), "the worker got %q", msg)
		assert.Equal(t, websocket.ClosePolicyViolation, ce.Code)
	})
}

// A client message AdmitClient refuses never reaches the worker.
func TestAdmitClientRefusalClosesWith1008(t *testing.T) {
	forEachEngine(t, func(t *testing.T, events bool) {
		n := 0
		p := newPair(t, Options{AdmitClient: func() error {
			if n++; n > 2 {
				return errors.New("message rate limit exceeded")
			}
			return nil
		}}, events)
		for i := range 3 {
			require.NoError(t, p.client.WriteMessage(websocket.TextMessage, []byte{'4', byte('0' + i)}))
		}
		for i := range 2 {
			_, msg, err := p.worker.ReadMessage()
			require.NoError(t, err)
			assert.Equal(t, []byte{'4', byte('0' + i)}, msg)
		}
		_, msg, err := p.worker.ReadMessage()
		var ce *websocket.CloseError
		require.True(t, errors.As(err, &ce), "the worker got %q", msg)
		assert.Equal(t, websocket.ClosePolicyViolation, ce.Code)
		assert.Equal(t, "message rate limit exceeded", ce.Text)
	})
}

// A client that never reads holds the relay at its TCP window: the relay
// stops reading from the worker, the worker's writes block, and the
// relay's memory does not grow with what the worker tries to send.
func TestClientThatNeverReadsDoesNotGrowTheRelaysMemory(t *testing.T) {
	forEachEngine(t, func(t *testing.T, events bool) {
		p := newPair(t, Options{}, events)
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)

		msg := make([]byte, 64<<10)
		sent := 0
		for sent < 256<<20 {
			_ = p.worker.SetWriteDeadline(time.Now().Add(2 * time.Second))
			if err := p.worker.WriteMessage(websocket.BinaryMessage, msg); err != nil {
				var ne net.Error
				require.True(t, errors.As(err, &ne) && ne.Timeout(), "worker write: %v", err)
				break
			}
			sent += len(msg)
		}
		require.Less(t, sent, 256<<20, "the worker could write 256 MiB to a client that never reads")

		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		grown := int64(after.HeapInuse) - int64(before.HeapInuse)
		t.Logf("worker wrote %d KiB before blocking; relay heap grew %d KiB", sent>>10, grown>>10)
		assert.Less(t, grown, int64(4<<20), "heap grew with the unread data")
	})
}

// Stopping a relay (the edge exiting) tells the client in order: the
// messages already relayed, then the farewell, then a 1001 close with the
// reason; the worker gets the 1001 too.
func TestStopSaysGoodbyeInOrder(t *testing.T) {
	forEachEngine(t, func(t *testing.T, events bool) {
		stop := new(Stopper)
		p := newPair(t, Options{Stop: stop, Farewell: []byte("1"), StopReason: "edge shutting down"}, events)
		require.NoError(t, p.worker.WriteMessage(websocket.TextMessage, []byte("42[\"last\"]")))
		_, msg, err := p.client.ReadMessage()
		require.NoError(t, err)
		require.Equal(t, `42["last"]`, string(msg))

		stop.Stop("")
		p.saidGoodbye(t, "edge shutting down")
		_, _, err = p.worker.ReadMessage()
		var ce *websocket.CloseError
		require.True(t, errors.As(err, &ce), "the worker got %v", err)
		assert.Equal(t, websocket.CloseGoingAway, ce.Code)
		p.endsWith(t, ErrStopped)
	})
}

// saidGoodbye checks that the client got the farewell "1", then a 1001
// close with reason.
func (p *testPair) saidGoodbye(t *testing.T, reason string) {
	t.Helper()
	_, msg, err := p.client.ReadMessage()
	require.NoError(t, err)
	assert.Equal(t, "1", string(msg), "the Engine.IO close packet")
	_, _, err = p.client.ReadMessage()
	var ce *websocket.CloseError
	require.True(t, errors.As(err, &ce), "got %v", err)
	assert.Equal(t, websocket.CloseGoingAway, ce.Code)
	assert.Equal(t, reason, ce.Text)
}

// endsWith checks that the relay ends, with want.
func (p *testPair) endsWith(t *testing.T, want error) {
	t.Helper()
	select {
	case err := <-p.done:
		assert.ErrorIs(t, err, want)
	case <-time.After(10 * time.Second):
		t.Fatal("the relay did not end")
	}
}

// A relay whose Stop came before it started (the edge began to exit as
// the session upgraded) says goodbye at once, the second Stop changing
// nothing.
func TestStopBeforeTheStart(t *testing.T) {
	forEachEngine(t, func(t *testing.T, events bool) {
		stop := new(Stopper)
		stop.Stop("edge shutting down early")
		stop.Stop("ignored")
		p := newPair(t, Options{Stop: stop, Farewell: []byte("1"), StopReason: "edge shutting down"}, events)
		p.saidGoodbye(t, "edge shutting down early")
		p.endsWith(t, ErrStopped)
	})
}

// A limit changed while the relay runs (a config reload) applies from the
// next message on, even to a relay already waiting for it.
func TestLimitIsAskedAsEachMessageBegins(t *testing.T) {
	forEachEngine(t, func(t *testing.T, events bool) {
		var limit atomic.Int64
		limit.Store(1 << 20)
		p := newPair(t, Options{Limit: limit.Load}, events)
		big := strings.Repeat("x", 100)
		require.NoError(t, p.client.WriteMessage(websocket.TextMessage, []byte(big)))
		_, msg, err := p.worker.ReadMessage()
		require.NoError(t, err)
		assert.Equal(t, big, string(msg))

		limit.Store(64)
		require.NoError(t, p.client.WriteMessage(websocket.TextMessage, []byte(big)))
		_, _, err = p.client.ReadMessage()
		var ce *websocket.CloseError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, websocket.CloseMessageTooBig, ce.Code)
		assert.ErrorIs(t, <-p.done, websocket.ErrReadLimit)
	})
}

// An Injector's messages reach each side whole, between relayed ones.
func TestInjectorSendsToBothSides(t *testing.T) {
	forEachEngine(t, func(t *testing.T, events bool) {
		in := new(Injector)
		assert.ErrorIs(t, in.ToClient([]byte("x")), ErrNotRelaying)
		p := newPair(t, Options{Inject: in}, events)
		require.NoError(t, p.client.WriteMessage(websocket.TextMessage, []byte("40")))
		_, msg, err := p.worker.ReadMessage()
		require.NoError(t, err)
		require.Equal(t, "40", string(msg))

		require.NoError(t, in.ToUpstream([]byte("41/admin,")))
		require.NoError(t, in.ToClient([]byte("41/admin,")))
		_, msg, err = p.worker.ReadMessage()
		require.NoError(t, err)
		assert.Equal(t, "41/admin,", string(msg))
		_, msg, err = p.client.ReadMessage()
		require.NoError(t, err)
		assert.Equal(t, "41/admin,", string(msg))
	})
}

// A Filter may drop messages: a Rewrite that returns nil sends nothing,
// and Binary decides for each binary message.
func TestFilterDropsMessages(t *testing.T) {
	forEachEngine(t, func(t *testing.T, events bool) {
		p := newPair(t, Options{FromClient: &Filter{
			PeekLen: 2,
			Peek:    func(h []byte) bool { return string(h) == "xx" },
			Rewrite: func([]byte) ([]byte, error) { return nil, nil },
			Binary:  func() bool { return false },
		}}, events)
		require.NoError(t, p.client.WriteMessage(websocket.TextMessage, []byte("xx dropped")))
		require.NoError(t, p.client.WriteMessage(websocket.BinaryMessage, []byte("dropped too")))
		require.NoError(t, p.client.WriteMessage(websocket.TextMessage, []byte("kept")))
		_, msg, err := p.worker.ReadMessage()
		require.NoError(t, err)
		assert.Equal(t, "kept", string(msg))
	})
}

// A stop with a cause says so in the close reason.
func TestStopCauseIsTheCloseReason(t *testing.T) {
	forEachEngine(t, func(t *testing.T, events bool) {
		stop := new(Stopper)
		p := newPair(t, Options{Stop: stop, Farewell: []byte("1"), StopReason: "edge shutting down"}, events)
		stop.Stop("worker draining for a deploy")
		p.saidGoodbye(t, "worker draining for a deploy")
	})
}
