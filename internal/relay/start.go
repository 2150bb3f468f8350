package relay

import (
	"net"
	"sync/atomic"

	"github.com/gorilla/websocket"
)

// takenOver counts the relays the event engine took over, so that tests
// can tell which engine ran.
var takenOver atomic.Int64

// Start relays between client and upstream as Relay does, and returns at
// once. done is called exactly once, on some goroutine of the relay's,
// with the error Relay would have returned; it should return soon.
//
// On Linux, when both connections are plain TCP (not TLS) and
// opt.NoTakeover is not set, the relay runs on the event engine: the
// relay takes the connections' file descriptors from gorilla (the
// *websocket.Conn values must not be used any more) and an idle relay
// then holds no goroutine and no buffer, only its parsing state. Taking
// over loses any byte gorilla read from a connection but did not return
// yet, so the caller sets NoTakeover when it read from one through
// gorilla. Otherwise Start runs Relay on a goroutine of its own.
//
// On the event engine, Options' functions (Limit, AdmitClient, Count,
// the filters') run on a poller goroutine that serves many connections:
// they must not block. They may call the relay's Injector.
// It reports whether the event engine took the relay.
func Start(client, upstream *websocket.Conn, opt Options, done func(error)) (evented bool) {
	if !opt.NoTakeover && startEvented(client, upstream, opt, done) {
		takenOver.Add(1)
		return true
	}
	go func() { done(Relay(client, upstream, opt)) }()
	return false
}

// TCPConner is a connection that wraps a plain TCP connection and hands
// it to the event engine: a net.Conn of the caller's own (one that
// records what it reads, say) is taken over like a *net.TCPConn. TLS
// connections must not implement it.
type TCPConner interface {
	RelayTCPConn() *net.TCPConn
}

// tcpConn is the TCP connection beneath c, when c is one or a TCPConner.
func tcpConn(c net.Conn) (*net.TCPConn, bool) {
	switch c := c.(type) {
	case *net.TCPConn:
		return c, true
	case TCPConner:
		tc := c.RelayTCPConn()
		return tc, tc != nil
	}
	return nil, false
}
