package relay

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
)

// The benchmarks relay messages between in-memory WebSocket connections
// (net.Pipe), so they measure the relay's own work per frame, not the
// kernel's; the event engine relays sockets only, so the "tcp/" modes run
// over loopback TCP, kernel included. Each one runs the same traffic
// without the relay too ("direct"): the difference is what the relay
// adds, since the allocation counts include the two endpoints'.
//
//	client ──pipe── [relay: client conn | upstream conn] ──pipe── backend

var benchSizes = []int{100, 4 << 10, 64 << 10}

// benchModes: over net.Pipe, no relay and the goroutine relay; over
// loopback TCP, which the event engine needs, no relay, the goroutine
// relay and the event engine.
var benchModes = []string{"direct", "relay", "tcp/direct", "tcp/goroutines", "tcp/events"}

// BenchmarkRelayOneWay streams messages from the client to the backend:
// one op is one relayed frame.
func BenchmarkRelayOneWay(b *testing.B) {
	for _, size := range benchSizes {
		for _, mode := range benchModes {
			b.Run(fmt.Sprintf("%s/%dB", mode, size), func(b *testing.B) {
				client, backend := benchConnect(b, mode)
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
	for _, mode := range benchModes {
		b.Run(mode, func(b *testing.B) {
			client, backend := benchConnect(b, mode)
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

// benchConnect returns the client's and the backend's ends, with a relay
// between them or not (see the modes). The relay's two connections are
// made the way socketio_proxy makes them: the client's by an Upgrader
// reusing the HTTP server's read buffer, the upstream's by a Dialer with
// a 1 KiB read buffer, both writing through a shared buffer pool.
func benchConnect(b *testing.B, mode string) (client, backend *websocket.Conn) {
	b.Helper()
	pool := &sync.Pool{}
	tcp := strings.HasPrefix(mode, "tcp/")
	if mode == "direct" || mode == "tcp/direct" {
		c, s := benchPair(b, tcp, websocket.Upgrader{}, websocket.Dialer{})
		return c, s
	}
	client, proxyClient := benchPair(b, tcp,
		websocket.Upgrader{ReadBufferSize: 0, WriteBufferPool: pool},
		websocket.Dialer{})
	proxyUpstream, backend := benchPair(b, tcp,
		websocket.Upgrader{},
		websocket.Dialer{ReadBufferSize: 1024, WriteBufferPool: pool})
	done := make(chan struct{})
	opt := Options{MaxMessage: 1 << 20}
	if mode == "tcp/events" {
		before := takenOver.Load()
		Start(proxyClient, proxyUpstream, opt, func(error) { close(done) })
		if takenOver.Load() == before {
			b.Skip("no event engine here")
		}
	} else {
		go func() {
			_ = Relay(proxyClient, proxyUpstream, opt)
			close(done)
		}()
	}
	b.Cleanup(func() {
		client.Close()
		backend.Close()
		<-done
	})
	return client, backend
}

// benchPair makes a WebSocket connection through a real HTTP upgrade,
// over net.Pipe or, with tcp, loopback TCP (the event engine relays
// sockets only), and returns its dialling and its accepting end.
func benchPair(b testing.TB, tcp bool, up websocket.Upgrader, d websocket.Dialer) (dialed, accepted *websocket.Conn) {
	b.Helper()
	l, dial := listen(b, tcp)
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
	d.NetDialContext = dial
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

type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// listen returns a listener and the function that dials it: net.Pipe's
// ends, or loopback TCP with tcp.
func listen(b testing.TB, tcp bool) (net.Listener, dialFunc) {
	b.Helper()
	if !tcp {
		l := &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
		return l, l.dial
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	return l, func(ctx context.Context, _, _ string) (net.Conn, error) {
		return new(net.Dialer).DialContext(ctx, "tcp", l.Addr().String())
	}
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

// BenchmarkIdlePair measures what an idle relayed connection costs: heap
// and stacks in use, and goroutines, per pair, with 2,000 pairs open and
// idle after one message each way. All ends live in this process, so
// "tcp/direct" (client and worker connected without a relay) measures
// the ends themselves; what a relay mode reports beyond it is the
// relay's. Run it once: -benchtime=1x.
func BenchmarkIdlePair(b *testing.B) {
	const pairs = 2000
	for _, mode := range []string{"tcp/direct", "tcp/goroutines", "tcp/events"} {
		b.Run(mode, func(b *testing.B) {
			for b.Loop() {
				heap, goroutines := idleCost(b, mode, pairs)
				b.ReportMetric(heap, "B/pair")
				b.ReportMetric(goroutines, "goroutines/pair")
			}
		})
	}
}

// idleCost opens pairs idle pairs in mode and returns the heap and stack
// bytes and the goroutines each one added.
func idleCost(b *testing.B, mode string, pairs int) (heap, goroutines float64) {
	pool := &sync.Pool{}
	worker := websocket.Upgrader{ReadBufferSize: 256, WriteBufferPool: pool}
	client := websocket.Dialer{ReadBufferSize: 256, WriteBufferPool: pool}
	workerL, dialWorker := listen(b, true)
	workerConns := make(chan *websocket.Conn, pairs)
	go serveWS(workerL, worker, func(c *websocket.Conn) { workerConns <- c })
	dialer := client
	dialer.NetDialContext = dialWorker
	if mode != "tcp/direct" {
		edgeL, dialEdge := listen(b, true)
		edgeUp := websocket.Dialer{ReadBufferSize: 1024, WriteBufferPool: pool, NetDialContext: dialWorker}
		edgeDown := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferPool: pool}
		var ended sync.WaitGroup
		go serveWS(edgeL, edgeDown, func(down *websocket.Conn) {
			up, _, err := edgeUp.Dial("ws://worker/", nil)
			if err != nil {
				b.Error(err)
				down.Close()
				return
			}
			ended.Add(1)
			if mode == "tcp/events" {
				Start(down, up, Options{}, func(error) { ended.Done() })
				return
			}
			go func() {
				_ = Relay(down, up, Options{})
				ended.Done()
			}()
		})
		b.Cleanup(ended.Wait)
		dialer.NetDialContext = dialEdge
	}
	before := takenOver.Load()
	m0, g0 := inUse(), runtime.NumGoroutine()
	ends := make([][2]*websocket.Conn, pairs)
	for i := range ends {
		c, _, err := dialer.Dial("ws://edge/", nil)
		if err != nil {
			b.Fatal(err)
		}
		w := <-workerConns
		ends[i] = [2]*websocket.Conn{c, w}
		if err := c.WriteMessage(websocket.TextMessage, []byte("40")); err != nil {
			b.Fatal(err)
		}
		if _, _, err := w.ReadMessage(); err != nil {
			b.Fatal(err)
		}
		if err := w.WriteMessage(websocket.TextMessage, []byte("40{}")); err != nil {
			b.Fatal(err)
		}
		if _, _, err := c.ReadMessage(); err != nil {
			b.Fatal(err)
		}
	}
	if mode == "tcp/events" && takenOver.Load()-before != int64(pairs) {
		b.Fatalf("the event engine took %d pairs of %d", takenOver.Load()-before, pairs)
	}
	m1, g1 := inUse(), runtime.NumGoroutine()
	for _, e := range ends {
		e[0].Close()
		e[1].Close()
	}
	return float64(m1-m0) / float64(pairs), float64(g1-g0) / float64(pairs)
}

// serveWS upgrades the connections l accepts and hands them to accepted,
// until l is closed.
func serveWS(l net.Listener, up websocket.Upgrader, accepted func(*websocket.Conn)) {
	_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := up.Upgrade(w, r, nil); err == nil {
			accepted(c)
		}
	}))
}

// inUse is the heap and stack memory in use after a collection.
func inUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse)
}
