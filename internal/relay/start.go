package relay

import (
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
func Start(client, upstream *websocket.Conn, opt Options, done func(error)) {
	if !opt.NoTakeover && startEvented(client, upstream, opt, done) {
		takenOver.Add(1)
		return
	}
	go func() { done(Relay(client, upstream, opt)) }()
}
