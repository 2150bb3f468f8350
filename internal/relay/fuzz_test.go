package relay

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/flaskedge/flaskedge/internal/socketio"
)

// fuzzLimit is the relay's MaxMessage in FuzzRelayClientFrames.
const fuzzLimit = 256

// FuzzRelayClientFrames feeds arbitrary bytes, as a client's side of a
// WebSocket after the upgrade, to a relay set up as socketio_proxy sets
// it up (the client's connection from an Upgrader with a 1 KiB read
// buffer, a message limit, a filter that refuses every text message
// python-socketio could read otherwise than the edge), and checks that
// the relay ends once the client's connection does, and that nothing
// reaches the worker but whole messages within the limit and text
// messages socketio.Read accepts. Each input goes through both engines:
// the goroutine relay, whose frame parser is gorilla's with the relay's
// handling of fragments, control frames and limits around it, and the
// event engine, which parses frames itself.
func FuzzRelayClientFrames(f *testing.F) {
	text, binaryMsg, cont := websocket.TextMessage, websocket.BinaryMessage, 0
	f.Add(frames(frame(true, text, `42["echo",1]`), frame(true, websocket.PingMessage, "p"), frame(true, text, "3")))
	f.Add(frames(frame(false, text, `42["ec`), frame(true, websocket.PingMessage, ""), frame(true, cont, `ho",1]`)))
	f.Add(frames(frame(true, text, `4"0/admin,"`), frame(true, text, `42["after"]`)))
	f.Add(frames(frame(true, text, `40/admin,{"token":"`+strings.Repeat("x", 40)+`"}`)))
	f.Add(frames(frame(true, binaryMsg, strings.Repeat("\x00", fuzzLimit+1))))
	f.Add(frames(frame(false, binaryMsg, strings.Repeat("b", 200)), frame(true, cont, strings.Repeat("b", 100))))
	f.Add(frames(frame(true, websocket.CloseMessage, string(websocket.FormatCloseMessage(1000, "bye")))))
	f.Add(frames(frame(true, text, "\xff\xfe"), frame(true, 3, "reserved opcode")))
	f.Add([]byte("\x81\x7f\xff\xff\xff\xff\xff\xff\xff\xff")) // a 64-bit length
	f.Fuzz(func(t *testing.T, stream []byte) {
		for _, events := range []bool{false, true} {
			got, _ := relayStream(t, stream, false, events)
			for _, m := range got {
				if len(m.data) > fuzzLimit {
					t.Fatalf("events %v: a %d-byte message reached the worker; the limit is %d", events, len(m.data), fuzzLimit)
				}
				if m.kind == websocket.TextMessage {
					if _, err := socketio.Read(m.data, false); err != nil {
						t.Fatalf("events %v: text message %q reached the worker though socketio.Read refuses it: %v", events, m.data, err)
					}
				}
			}
		}
	})
}

// The harness is not vacuous: well-formed messages reach the worker whole,
// fragmented or not, and a refused one ends the relay before it does.
func TestFuzzHarnessRelaysWhatItShould(t *testing.T) {
	forEachEngine(t, func(t *testing.T, events bool) {
		got, err := relayStream(t, frames(
			frame(true, websocket.TextMessage, `42["echo",1]`),
			frame(false, websocket.TextMessage, `42["ec`), frame(true, websocket.PingMessage, ""), frame(true, 0, `ho",2]`),
			frame(true, websocket.BinaryMessage, "\x01\x02"),
		), true, events)
		if len(got) != 3 || string(got[0].data) != `42["echo",1]` || string(got[1].data) != `42["echo",2]` || got[2].kind != websocket.BinaryMessage {
			t.Fatalf("the worker got %+v (relay: %v)", got, err)
		}
		got, err = relayStream(t, frames(frame(true, websocket.TextMessage, `4"0/admin,"`), frame(true, websocket.TextMessage, `42["after"]`)), true, events)
		var pe *PolicyError
		if len(got) != 0 || !errors.As(err, &pe) {
			t.Fatalf("a refused message: the worker got %+v, the relay ended with %v", got, err)
		}
	})
}

type message struct {
	kind int
	data []byte
}

// relayStream writes stream to a relay as the client, then closes the
// client's connection (graceful: sends a close frame and lets the relay
// end the connection), and returns what reached the worker and how the
// relay ended. The relay is Relay over net.Pipe, or, with events, Start
// on the event engine over loopback TCP.
func relayStream(t *testing.T, stream []byte, graceful, events bool) ([]message, error) {
	t.Helper()
	raw, clientSide := rawClient(t, events)
	upstreamSide, worker := benchPair(t, events, websocket.Upgrader{}, websocket.Dialer{ReadBufferSize: 1024, WriteBufferPool: &sync.Pool{}})
	received := make(chan []message, 1)
	go func() {
		var got []message
		for {
			kind, data, err := worker.ReadMessage()
			if err != nil {
				received <- got
				return
			}
			got = append(got, message{kind, data})
		}
	}()
	go func() { _, _ = io.Copy(io.Discard, raw) }() // what the relay says to the client
	done := make(chan error, 1)
	opt := Options{
		MaxMessage: fuzzLimit,
		CloseGrace: 50 * time.Millisecond,
		FromClient: packetFilter(),
	}
	if events {
		before := takenOver.Load()
		Start(clientSide, upstreamSide, opt, func(err error) { done <- err })
		if runtime.GOOS == "linux" && takenOver.Load() == before {
			t.Fatal("the event engine did not take the connections")
		}
	} else {
		go func() { done <- Relay(clientSide, upstreamSide, opt) }()
	}
	go func() {
		if graceful {
			stream = append(bytes.Clone(stream), frame(true, websocket.CloseMessage, string(websocket.FormatCloseMessage(1000, "")))...)
		}
		_, _ = raw.Write(stream)
		if !graceful {
			_ = raw.Close()
		}
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("the relay did not end 10 s after the client's connection closed; input %q", stream)
	}
	worker.Close()
	return <-received, err
}

// packetFilter refuses, as socketio_proxy does, every client text message
// socketio.Read refuses, reading whole only those ReadHead cannot decide.
func packetFilter() *Filter {
	return &Filter{
		PeekLen: 32,
		Peek: func(p []byte) bool {
			_, decided := socketio.ReadHead(p)
			return !decided
		},
		Rewrite: func(msg []byte) ([]byte, error) {
			if _, err := socketio.Read(msg, false); err != nil {
				return nil, err
			}
			return msg, nil
		},
	}
}

// rawClient upgrades a connection over net.Pipe, or loopback TCP with
// tcp, with the Upgrader settings socketio_proxy uses and returns the
// client's raw end, past the handshake, and the relay's end.
func rawClient(t *testing.T, tcp bool) (io.ReadWriteCloser, *websocket.Conn) {
	t.Helper()
	up := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferPool: &sync.Pool{}}
	pl, dial := listen(t, tcp)
	accepted := make(chan *websocket.Conn, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		accepted <- c
	})}
	go func() { _ = srv.Serve(pl) }()
	conn, err := dial(t.Context(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _ = conn.Write([]byte("GET / HTTP/1.1\r\nHost: pipe\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"))
	}()
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", res, err)
	}
	relaySide := <-accepted
	_ = srv.Close()
	t.Cleanup(func() {
		conn.Close()
		relaySide.Close()
	})
	return struct {
		io.Reader
		io.Writer
		io.Closer
	}{br, conn, conn}, relaySide
}

// frame encodes one client frame, masked as a client must.
func frame(fin bool, opcode int, payload string) []byte {
	b0 := byte(opcode)
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		out = append(out, 0x80|byte(n))
	case n < 1<<16:
		out = append(out, 0x80|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, 0x80|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	out = append(out, key[:]...)
	for i := range len(payload) {
		out = append(out, payload[i]^key[i%4])
	}
	return out
}

func frames(fs ...[]byte) []byte { return bytes.Join(fs, nil) }
