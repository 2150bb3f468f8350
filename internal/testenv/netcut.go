package testenv

import (
	"io"
	"net"
	"sync"
	"testing"
)

// NetCut is a loopback TCP forwarder standing for a client's network: the
// client connects to Addr, NetCut forwards to the target, and the test
// takes the network away (Cut) and gives it back (Restore) whenever it
// wants, as a train going into a tunnel would.
type NetCut struct {
	// Addr is where clients connect, "127.0.0.1:PORT".
	Addr string

	ln net.Listener
	wg sync.WaitGroup // the accept loop and every connection's copiers

	mu     sync.Mutex
	target string
	cut    bool
	conns  map[net.Conn]struct{} // both ends of every live connection
	closed bool
}

// StartNetCut listens on a fresh loopback port and forwards every
// connection to targetAddr until the test ends; it is stopped at cleanup,
// every connection through it closed.
func StartNetCut(t testing.TB, targetAddr string) *NetCut {
	t.Helper()
	VerifyNoLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: NetCut: %v", err)
	}
	n := &NetCut{Addr: ln.Addr().String(), ln: ln, target: targetAddr, conns: map[net.Conn]struct{}{}}
	n.wg.Add(1)
	go n.accept()
	t.Cleanup(n.stop)
	return n
}

// Cut closes every connection through n, on both sides, and from now on
// closes each new connection as soon as it is accepted, until Restore: a
// client sees its connections end and every reconnection fail at once.
func (n *NetCut) Cut() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut = true
	n.closeAll()
}

// Restore forwards new connections again.
func (n *NetCut) Restore() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut = false
}

// Retarget forwards new connections to addr from now on (live ones keep
// their target): a client that reconnects after a Cut reaches another
// server, as one behind a load balancer that picked another edge would.
func (n *NetCut) Retarget(addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.target = addr
}

func (n *NetCut) accept() {
	defer n.wg.Done()
	for {
		c, err := n.ln.Accept()
		if err != nil {
			return // closed by stop
		}
		n.mu.Lock()
		cut, target := n.cut || n.closed, n.target
		n.mu.Unlock()
		if cut {
			_ = c.Close()
			continue
		}
		n.wg.Add(1)
		go n.forward(c, target)
	}
}

// forward dials target for the client connection c and copies both ways
// until either side ends or Cut closes both.
func (n *NetCut) forward(c net.Conn, target string) {
	defer n.wg.Done()
	up, err := net.Dial("tcp", target)
	if err != nil {
		_ = c.Close()
		return
	}
	n.mu.Lock()
	if n.cut || n.closed {
		n.mu.Unlock()
		_ = c.Close()
		_ = up.Close()
		return
	}
	n.conns[c], n.conns[up] = struct{}{}, struct{}{}
	n.mu.Unlock()

	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Half-close so that a side that finished sending still receives.
		if tcp, ok := dst.(*net.TCPConn); ok {
			_ = tcp.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	<-done
	n.mu.Lock()
	delete(n.conns, c)
	delete(n.conns, up)
	n.mu.Unlock()
	_ = c.Close()
	_ = up.Close()
}

// closeAll closes both ends of every live connection; n.mu is held.
func (n *NetCut) closeAll() {
	for c := range n.conns {
		_ = c.Close()
	}
}

func (n *NetCut) stop() {
	n.mu.Lock()
	n.closed = true
	n.closeAll()
	n.mu.Unlock()
	_ = n.ln.Close()
	n.wg.Wait()
}
