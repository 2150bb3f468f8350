package relay

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
)

// The benchmarks relay messages between in-memory WebSocket connections
// (net.Pipe), so they measure the relay's own work per frame, not the
// kernel's. Each one runs the same traffic without the relay too
// ("direct"): the difference is what the relay adds, since the allocation
// counts include the two endpoints'.
//
//	client ──pipe── [relay: client conn | upstream conn] ──pipe── backend

var benchSizes = []int{100, 4 << 10, 64 << 10}

// BenchmarkRelayOneWay streams messages from the client to the backend:
// one op is one relayed frame.
func BenchmarkRelayOneWay(b *testing.B) {
	for _, size := range benchSizes {
		for _, mode := range []string{"direct", "relay"} {
			b.Run(fmt.Sprintf("%s/%dB", mode, size), func(b *testing.B) {
				client, backend := benchConnect(b, mode == "relay")
				msg := bytes.Repeat([]byte("x"), size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				errc := make(chan error, 1)
				go func() {
					for i := 0; i < b.N; i++ {
						if err := client.WriteMessage(websocket.TextMessage, msg); err != nil {
							errc <- err
							return
						}
					}
					errc <- nil
				}()
				for i := 0; i < b.N; i++ {
					if err := benchDiscard(backend); err != nil {
						b.Fatal(err)
					}
				}
				if err := <-errc; err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

// BenchmarkRelayEcho is a Socket.IO acknowledged echo: the client sends a
// message and waits for the backend's answer. One op is one round trip,
// two relayed frames.
func BenchmarkRelayEcho(b *testing.B) {
	for _, mode := range []string{"direct", "relay"} {
		b.Run(mode, func(b *testing.B) {
			client, backend := benchConnect(b, mode == "relay")
			event := []byte(`421["echo",{"pad":"abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123"}]`)
			ack := []byte(`431[{"data":{"pad":"abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123"},"backend":"a"}]`)
			go func() {
				for {
					if err := benchDiscard(backend); err != nil {
						return
					}
					if err := backend.WriteMessage(websocket.TextMessage, ack); err != nil {
						return
					}
				}
			}()
			b.ReportAllocs()
			for b.Loop() {
				if err := client.WriteMessage(websocket.TextMessage, event); err != nil {
					b.Fatal(err)
				}
				if err := benchDiscard(client); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// discardBuf is shared by the endpoints' readers so that reading adds no
// allocation of its own to the counts.
var discardBuf = sync.Pool{New: func() any { return new([32 << 10]byte) }}

func benchDiscard(c *websocket.Conn) error {
	_, r, err := c.NextReader()
	if err != nil {
		return err
	}
	buf := discardBuf.Get().(*[32 << 10]byte)
	defer discardBuf.Put(buf)
	_, err = io.CopyBuffer(io.Discard, r, buf[:])
	return err
}

// benchConnect returns the client's and the backend's ends, with the relay
// between them or not. The relay's two connections are made the way
// socketio_proxy makes them: the client's by an Upgrader reusing the HTTP
// server's read buffer, the upstream's by a Dialer with a 1 KiB read
// buffer, both writing through a shared buffer pool.
func benchConnect(b *testing.B, relayed bool) (client, backend *websocket.Conn) {
	b.Helper()
	pool := &sync.Pool{}
	if !relayed {
		c, s := benchPair(b, websocket.Upgrader{}, websocket.Dialer{})
		return c, s
	}
	client, proxyClient := benchPair(b,
		websocket.Upgrader{ReadBufferSize: 0, WriteBufferPool: pool},
		websocket.Dialer{})
	proxyUpstream, backend := benchPair(b,
		websocket.Upgrader{},
		websocket.Dialer{ReadBufferSize: 1024, WriteBufferPool: pool})
	done := make(chan struct{})
	go func() {
		_ = Relay(proxyClient, proxyUpstream, Options{MaxMessage: 1 << 20})
		close(done)
	}()
	b.Cleanup(func() {
		client.Close()
		backend.Close()
		<-done
	})
	return client, backend
}

// benchPair makes a WebSocket connection over net.Pipe through a real HTTP
// upgrade, and returns its dialling and its accepting end.
func benchPair(b testing.TB, up websocket.Upgrader, d websocket.Dialer) (dialed, accepted *websocket.Conn) {
	b.Helper()
	l := &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
	acceptedc := make(chan *websocket.Conn, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			b.Error(err)
			return
		}
		acceptedc <- c
	})}
	go func() { _ = srv.Serve(l) }()
	d.NetDialContext = l.dial
	dialed, _, err := d.Dial("ws://pipe/", nil)
	if err != nil {
		b.Fatal(err)
	}
	accepted = <-acceptedc
	// Hijacked connections are not the server's any more; this only
	// stops its accept loop.
	_ = srv.Close()
	b.Cleanup(func() {
		dialed.Close()
		accepted.Close()
	})
	return dialed, accepted
}

// pipeListener hands an http.Server the accepting ends of net.Pipes.
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	c, s := net.Pipe()
	select {
	case l.conns <- s:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }
