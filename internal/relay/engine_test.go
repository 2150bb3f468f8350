package relay

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests below are about frames as they cross the wire, which the
// event engine parses itself: the client writes raw frames (see frame)
// on its TCP connection, past gorilla.

func (p *testPair) rawWrite(t *testing.T, b []byte) {
	t.Helper()
	_, err := p.client.NetConn().Write(b)
	require.NoError(t, err)
}

// relaying returns once the relay runs: the edge may start it after the
// client's handshake is done.
func (p *testPair) relaying(t *testing.T) {
	t.Helper()
	require.NoError(t, p.client.WriteMessage(websocket.TextMessage, []byte("2")))
	require.Equal(t, "2", readText(t, p.worker))
}

func upperFilter() *Filter {
	return &Filter{
		PeekLen: 2,
		Peek:    func(p []byte) bool { return string(p) == "40" },
		Rewrite: func(msg []byte) ([]byte, error) { return bytes.ToUpper(msg), nil },
	}
}

func readText(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := c.ReadMessage()
	require.NoError(t, err)
	return string(msg)
}

func TestFragmentedTextMessagesReachTheFilterWhole(t *testing.T) {
	forEachEngine(t, func(t *testing.T, events bool) {
		p := newPair(t, Options{FromClient: upperFilter()}, events)
		text, cont := websocket.TextMessage, 0
		p.rawWrite(t, frames(frame(false, text, "4"), frame(false, cont, "0/ad"), frame(true, cont, "min,")))
		assert.Equal(t, "40/ADMIN,", readText(t, p.worker))
		p.rawWrite(t, frames(frame(false, text, `42["a`), frame(true, cont, `"]`)))
		assert.Equal(t, `42["a"]`, readText(t, p.worker), "a message Peek declines")
		p.rawWrite(t, frames(frame(false, websocket.BinaryMessage, "40"), frame(true, cont, "/x")))
		mt, msg, err := p.worker.ReadMessage()
		require.NoError(t, err)
		assert.Equal(t, websocket.BinaryMessage, mt)
		assert.Equal(t, "40/x", string(msg))
	})
}

func TestPingBetweenFragmentsIsPassedOn(t *testing.T) {
	for _, filter := range []*Filter{nil, upperFilter()} {
		forEachEngine(t, func(t *testing.T, events bool) {
			p := newPair(t, Options{FromClient: filter}, events)
			pings := make(chan string, 1)
			p.worker.SetPingHandler(func(data string) error { pings <- data; return nil })
			p.rawWrite(t, frames(frame(false, websocket.TextMessage, `40["ec`), frame(true, websocket.PingMessage, "p1"),
				frame(true, 0, `ho"]`)))
			want := `40["echo"]`
			if filter != nil {
				want = strings.ToUpper(want)
			}
			assert.Equal(t, want, readText(t, p.worker))
			assert.Equal(t, "p1", <-pings)
		})
	}
}

// A client frame without a mask breaks the protocol: the client gets
// 1002, as gorilla would answer, and the worker 1001.
func TestUnmaskedClientFrameClosesWith1002(t *testing.T) {
	forEachEngine(t, func(t *testing.T, events bool) {
		p := newPair(t, Options{}, events)
		p.rawWrite(t, []byte{0x81, 0x02, 'h', 'i'})
		_, _, err := p.client.ReadMessage()
		var ce *websocket.CloseError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, websocket.CloseProtocolError, ce.Code)
		assert.Equal(t, "bad MASK", ce.Text)
		p.client.Close()
		_, _, err = p.worker.ReadMessage()
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, websocket.CloseGoingAway, ce.Code)
		assert.ErrorContains(t, <-p.done, "bad MASK")
	})
}

func TestFramesSplitByteByByteAreRelayed(t *testing.T) {
	forEachEngine(t, func(t *testing.T, events bool) {
		p := newPair(t, Options{FromClient: upperFilter()}, events)
		long := strings.Repeat("x", 300) // a 16-bit length
		stream := frames(frame(true, websocket.TextMessage, long), frame(true, websocket.TextMessage, "40/a,"),
			frame(true, websocket.PingMessage, "p"), frame(true, websocket.TextMessage, "42"))
		require.NoError(t, p.client.NetConn().(interface{ SetNoDelay(bool) error }).SetNoDelay(true))
		go func() {
			for i := range stream {
				if _, err := p.client.NetConn().Write(stream[i : i+1]); err != nil {
					return
				}
				time.Sleep(100 * time.Microsecond)
			}
		}()
		assert.Equal(t, long, readText(t, p.worker))
		assert.Equal(t, "40/A,", readText(t, p.worker))
		assert.Equal(t, "42", readText(t, p.worker))
	})
}

func TestLargeMessageStreamsThroughAFilterThatDeclinesIt(t *testing.T) {
	decline := &Filter{
		PeekLen: 32,
		Peek:    func([]byte) bool { return false },
		Rewrite: func([]byte) ([]byte, error) { panic("Rewrite called for a declined message") },
	}
	forEachEngine(t, func(t *testing.T, events bool) {
		p := newPair(t, Options{MaxMessage: 2 << 20, FromClient: decline, FromUpstream: decline}, events)
		big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
		go func() { _ = p.client.WriteMessage(websocket.TextMessage, big) }()
		assert.True(t, bytes.Equal(big, []byte(readText(t, p.worker))), "client → worker")
		go func() { _ = p.worker.WriteMessage(websocket.TextMessage, big) }()
		assert.True(t, bytes.Equal(big, []byte(readText(t, p.client))), "worker → client")
	})
}

// Injected messages go out between frames: one injected while a large
// frame is on its way does not land inside it.
func TestInjectionNeverLandsInsideAFrame(t *testing.T) {
	forEachEngine(t, func(t *testing.T, events bool) {
		in := new(Injector)
		p := newPair(t, Options{Inject: in}, events)
		p.relaying(t)
		big := bytes.Repeat([]byte{0xa5}, 1<<20)
		const bigs, injections = 8, 200
		var wg sync.WaitGroup
		wg.Go(func() {
			for range bigs {
				if p.worker.WriteMessage(websocket.BinaryMessage, big) != nil {
					return
				}
			}
		})
		wg.Go(func() {
			for range bigs {
				if p.client.WriteMessage(websocket.BinaryMessage, big) != nil {
					return
				}
			}
		})
		inject := []func([]byte) error{in.ToClient, in.ToUpstream}
		for _, send := range inject {
			wg.Go(func() {
				for range injections {
					_ = send([]byte("injected"))
					time.Sleep(50 * time.Microsecond)
				}
			})
		}
		errs := make(chan error, 2)
		for _, c := range []*websocket.Conn{p.client, p.worker} {
			go func() { errs <- readInterleaved(c, big, bigs, injections) }()
		}
		for range 2 {
			require.NoError(t, <-errs)
		}
		wg.Wait()
	})
}

// readInterleaved reads bigs large messages and injections injected ones
// from c, in any order, and says whether one of them came broken.
func readInterleaved(c *websocket.Conn, big []byte, bigs, injections int) error {
	var gotBig, gotInjected int
	for gotBig < bigs || gotInjected < injections {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		mt, msg, err := c.ReadMessage()
		switch {
		case err != nil:
			return fmt.Errorf("after %d large and %d injected messages: %w", gotBig, gotInjected, err)
		case mt == websocket.BinaryMessage && !bytes.Equal(big, msg):
			return errors.New("a large message came broken")
		case mt == websocket.BinaryMessage:
			gotBig++
		case string(msg) != "injected":
			return fmt.Errorf("an injected message came as %q", msg)
		default:
			gotInjected++
		}
	}
	return nil
}

// Many pairs relaying at once, idle, then closed, leave no goroutine and
// no file descriptor behind.
func TestManyIdlePairsThenClosedLeaveNothing(t *testing.T) {
	const pairs = 500
	forEachEngine(t, func(t *testing.T, events bool) {
		r := newRig(t, Options{CloseGrace: time.Second}, events, pairs)
		warm := r.connect(t) // the pollers' own descriptors, kept
		warm.client.Close()
		<-r.done
		fds, goroutines := openFDs(t), runtime.NumGoroutine()

		ps := make([]*testPair, pairs)
		for i := range ps {
			ps[i] = r.connect(t)
			require.NoError(t, ps[i].client.WriteMessage(websocket.TextMessage, []byte("40")))
		}
		for _, p := range ps {
			assert.Equal(t, "40", readText(t, p.worker))
		}
		if events {
			assert.Less(t, runtime.NumGoroutine()-goroutines, 10, "goroutines for idle relays")
		}
		for i, p := range ps {
			if i%2 == 0 {
				p.client.Close()
			} else {
				p.worker.Close()
			}
		}
		for range ps {
			select {
			case <-r.done:
			case <-time.After(10 * time.Second):
				t.Fatal("a relay did not end")
			}
		}
		for _, p := range ps {
			p.client.Close()
			p.worker.Close()
		}
		deadline := time.Now().Add(5 * time.Second)
		for openFDs(t) > fds || runtime.NumGoroutine() > goroutines {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Fatalf("fds %d → %d, goroutines %d → %d:\n%s", fds, openFDs(t), goroutines, runtime.NumGoroutine(),
					buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func openFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if errors.Is(err, os.ErrNotExist) {
		if os.Getenv("CI") == "true" {
			t.Fatal("no /proc/self/fd to count descriptors (CI=true makes this a failure)")
		}
		t.Skip("no /proc/self/fd")
	}
	require.NoError(t, err)
	return len(fds)
}

// Injector.Close ends the relay with 1008 and the reason to both sides;
// the worker's connection closes at once, the client's once it has
// answered.
func TestInjectorCloseSays1008ToBothSides(t *testing.T) {
	forEachEngine(t, func(t *testing.T, events bool) {
		in := new(Injector)
		p := newPair(t, Options{Inject: in}, events)
		p.relaying(t)
		in.Close("namespace withdrawn")
		for _, c := range []*websocket.Conn{p.client, p.worker} {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, _, err := c.ReadMessage()
			var ce *websocket.CloseError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, websocket.ClosePolicyViolation, ce.Code)
			assert.Equal(t, "namespace withdrawn", ce.Text)
		}
		_, err := p.worker.NetConn().Read(make([]byte, 1))
		assert.ErrorIs(t, err, io.EOF, "the worker's connection is closed")
		p.client.Close()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Fatal("the relay did not end")
		}
	})
}

// Frames that break the protocol end the relay as gorilla ends a
// connection: the side that sent them gets 1002 with what is wrong, the
// other 1001, and the relay returns gorilla's error.
func TestProtocolErrorsCloseWith1002(t *testing.T) {
	text, ping := websocket.TextMessage, websocket.PingMessage
	for _, tc := range []struct {
		name, want string
		stream     []byte
	}{
		{"rsv1", "RSV1 set", func() []byte { f := frame(true, text, "x"); f[0] |= 0x40; return f }()},
		{"opcode", "bad opcode 3", frame(true, 3, "x")},
		{"fragmented control", "FIN not set on control", frame(false, ping, "p")},
		{"long control", "len > 125 for control", frame(true, ping, strings.Repeat("p", 126))},
		{"continuation", "continuation after FIN", frame(true, 0, "x")},
		{"data in a message", "data before FIN", frames(frame(false, text, "a"), frame(true, text, "b"))},
		{"close code", "bad close code 1005", frame(true, websocket.CloseMessage, "\x03\xed")},
		{"close text", "invalid utf8 payload in close frame", frame(true, websocket.CloseMessage, "\x03\xe8\xff")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachEngine(t, func(t *testing.T, events bool) {
				p := newPair(t, Options{}, events)
				p.rawWrite(t, tc.stream)
				// Read raw, to see every frame: one close frame, 1002.
				nc := p.client.NetConn()
				_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
				got, _ := io.ReadAll(nc)
				var closes [][]byte
				for len(got) >= 2 && got[1] < 126 {
					n := 2 + int(got[1])
					if n > len(got) {
						break
					}
					if got[0]&0xf == websocket.CloseMessage {
						closes = append(closes, got[2:n])
					}
					got = got[n:]
				}
				require.Len(t, closes, 1, "close frames the client got")
				assert.Equal(t, websocket.FormatCloseMessage(websocket.CloseProtocolError, tc.want), closes[0])
				p.client.Close()
				var err error
				var ce *websocket.CloseError
				// The goroutine relay sends the worker what it had of a
				// message as a whole one; the event engine leaves it
				// unfinished.
				for err = nil; err == nil; {
					_, _, err = p.worker.ReadMessage()
				}
				require.ErrorAs(t, err, &ce)
				assert.Equal(t, websocket.CloseGoingAway, ce.Code)
				assert.EqualError(t, <-p.done, "websocket: "+tc.want)
			})
		})
	}
}

// A worker's frame that breaks the protocol (here, masked) gets the
// worker 1002, as the edge is its client.
func TestMaskedWorkerFrameClosesWith1002(t *testing.T) {
	forEachEngine(t, func(t *testing.T, events bool) {
		p := newPair(t, Options{}, events)
		_, err := p.worker.NetConn().Write(frame(true, websocket.TextMessage, "x"))
		require.NoError(t, err)
		_, _, err = p.worker.ReadMessage()
		var ce *websocket.CloseError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, websocket.CloseProtocolError, ce.Code)
		assert.Equal(t, "bad MASK", ce.Text)
		_, _, err = p.client.ReadMessage()
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, websocket.CloseGoingAway, ce.Code)
		p.client.Close()
		assert.EqualError(t, <-p.done, "websocket: bad MASK")
	})
}

// Stopping while a large message from the worker is on its way: the
// client gets it whole, then the farewell, then 1001. (The goroutine
// relay cuts the message short: Stop interrupts its read.)
func TestStopWaitsForTheMessageOnItsWay(t *testing.T) {
	forEachEngine(t, func(t *testing.T, events bool) {
		if !events {
			t.Skip("the goroutine relay sends what it has of the message")
		}
		stop := new(Stopper)
		p := newPair(t, Options{Stop: stop, Farewell: []byte("1")}, events)
		big := bytes.Repeat([]byte("x"), 4<<20)
		go func() { _ = p.worker.WriteMessage(websocket.BinaryMessage, big) }()
		_, r, err := p.client.NextReader()
		require.NoError(t, err)
		head := make([]byte, 1024)
		_, err = io.ReadFull(r, head)
		require.NoError(t, err)
		stop.Stop("")
		rest, err := io.ReadAll(r)
		require.NoError(t, err)
		assert.Equal(t, len(big), len(head)+len(rest))
		assert.Equal(t, "1", readText(t, p.client))
		_, _, err = p.client.ReadMessage()
		var ce *websocket.CloseError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, websocket.CloseGoingAway, ce.Code)
	})
}

// A client still sending when the relay refuses one of its messages gets
// the close frame and its reason, not a reset that loses them: the
// relay's end of the connection lingers (see Linger).
func TestClientStillSendingGetsItsCloseFrame(t *testing.T) {
	forEachEngine(t, func(t *testing.T, events bool) {
		var n atomic.Int64
		p := newPair(t, Options{AdmitClient: func() error {
			if n.Add(1) > 10 {
				return errors.New("rate limited")
			}
			return nil
		}}, events)
		go func() { _, _, _ = p.worker.ReadMessage() }()
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			msg := bytes.Repeat([]byte("x"), 1024)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if p.client.WriteMessage(websocket.TextMessage, msg) != nil {
					return
				}
			}
		}()
		_ = p.client.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, err := p.client.ReadMessage()
		var ce *websocket.CloseError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, websocket.ClosePolicyViolation, ce.Code)
		assert.Equal(t, "rate limited", ce.Text)
	})
}

// A client that closes first gets the worker's answer to its close frame
// before its connection ends, as RFC 6455 §5.5.1 wants: the closing
// handshake completes end to end.
func TestClientCloseGetsTheWorkersAnswer(t *testing.T) {
	forEachEngine(t, func(t *testing.T, events bool) {
		p := newPair(t, Options{}, events)
		// The worker answers the close frame it is passed (gorilla's
		// default close handler) when it reads it.
		workerRead := make(chan error, 1)
		go func() {
			_, _, err := p.worker.ReadMessage()
			workerRead <- err
		}()
		require.NoError(t, p.client.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(4000, "bye"), time.Now().Add(time.Second)))
		var ce *websocket.CloseError
		require.ErrorAs(t, <-workerRead, &ce)
		assert.Equal(t, 4000, ce.Code)
		_ = p.client.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _, err := p.client.ReadMessage()
		require.ErrorAs(t, err, &ce, "the client got no close frame back")
		assert.Equal(t, 4000, ce.Code, "the worker's answer echoes the client's code")
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			t.Fatal("the relay did not end after the closing handshake")
		}
	})
}

// A message and the sender's FIN arriving together: the read that takes
// the message stops short, and the EOF behind it comes with no epoll
// event of its own, so the engine reads on to it instead of counting the
// socket drained. The message is passed on and the relay ends, from
// either side.
func TestAMessageFollowedAtOnceByFINIsRelayedAndEndsTheRelay(t *testing.T) {
	for _, fromClient := range []bool{true, false} {
		name := "worker sends"
		if fromClient {
			name = "client sends"
		}
		t.Run(name, func(t *testing.T) {
			forEachEngine(t, func(t *testing.T, events bool) {
				for range 20 {
					p := newPair(t, Options{}, events)
					from, to := p.worker, p.client
					if fromClient {
						from, to = p.client, p.worker
					}
					require.NoError(t, from.WriteMessage(websocket.TextMessage, []byte(`42["last words"]`)))
					require.NoError(t, from.UnderlyingConn().(*net.TCPConn).CloseWrite())
					_ = to.SetReadDeadline(time.Now().Add(10 * time.Second))
					_, msg, err := to.ReadMessage()
					require.NoError(t, err)
					assert.Equal(t, `42["last words"]`, string(msg))
					// Both ends read on, and so answer the relay's
					// close frames at once.
					go func() { _, _, _ = to.ReadMessage() }()
					go func() { _, _, _ = from.ReadMessage() }()
					select {
					case <-p.done:
					case <-time.After(10 * time.Second):
						t.Fatal("the relay never saw the FIN after the message")
					}
				}
			})
		})
	}
}
