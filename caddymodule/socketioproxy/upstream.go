package socketioproxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/flaskedge/flaskedge/internal/h1client"
	"github.com/flaskedge/flaskedge/internal/sticky"
)

// upstream is one Flask-SocketIO worker as one config sees it: its
// connections, and its state shared with every config (see state.go).
type upstream struct {
	*upstreamState
	tag sticky.Tag
	// retired is cancelled when the worker leaves this config's dynamic
	// set: the sessions this config relays to it end. It is the
	// config's, not the worker's: another config (another site) that
	// still names the worker keeps its sessions.
	retired context.Context
	retire  context.CancelFunc
	// shared is a dynamic worker's retirement, shared with the other
	// configs of its source and held by the relays opened to it (see
	// retireWith); nil for a worker the config names. Set before the
	// upstream is used, never changed; released tells whether close let
	// it go.
	shared   *retirement
	released atomic.Bool
	http     *http.Transport
	// poll carries the polling requests and the edge's own POSTs to the
	// worker (see h1client); http the health checks.
	poll   *h1client.Client
	dialer *websocket.Dialer
	// scheme is "http" or "https"; the WebSocket's is "ws" or "wss".
	scheme, wsScheme string
}

// writeBuffers lends WebSocket write buffers to whichever connection is
// writing a message at the moment, so an idle relayed connection holds
// none.
var writeBuffers = &sync.Pool{}

// newUpstream prepares the connections to the worker at addr: plain when
// tlsConfig is nil, otherwise TLS with that config (shared, never
// changed) for polling, health checks and the WebSocket alike.
func newUpstream(addr string, tag sticky.Tag, dialTimeout time.Duration, tlsConfig *tls.Config) *upstream {
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	retired, retire := context.WithCancel(context.Background())
	u := &upstream{
		retired:       retired,
		retire:        retire,
		upstreamState: loadUpstreamState(addr),
		tag:           tag,
		scheme:        "http",
		wsScheme:      "ws",
		http: &http.Transport{
			DialContext: d.DialContext,
			// Nil for plain workers. HTTP/2 is not attempted: a custom
			// TLS config turns it off, and eventlet speaks HTTP/1.1.
			TLSClientConfig:     tlsConfig,
			TLSHandshakeTimeout: dialTimeout,
			// Every live session may hold one long-poll GET and one
			// POST; keep enough idle connections for them to reuse.
			MaxIdleConnsPerHost: 1024,
			IdleConnTimeout:     90 * time.Second,
			// Pass the client's Accept-Encoding through untouched.
			DisableCompression: true,
			// A long-poll GET legitimately waits up to pingInterval for
			// its response, so there is no response-header timeout; the
			// client's own disconnect cancels it.
		},
		dialer: &websocket.Dialer{
			NetDialContext:   interruptible(d.DialContext),
			TLSClientConfig:  tlsConfig,
			HandshakeTimeout: dialTimeout,
			ReadBufferSize:   1024,
			WriteBufferPool:  writeBuffers,
			// Not negotiated: the relay passes frames as they are and a
			// compressed frame could not be inspected.
			EnableCompression: false,
		},
	}
	u.poll = &h1client.Client{
		Addr: addr,
		Dial: d.DialContext,
		TLS:  withServerName(tlsConfig, addr),
		// The connections of the sessions live at the moment (a waiting
		// GET and a POST each), kept for as long as a session polls
		// again at the latest (pingInterval + pingTimeout, 45 s by
		// default), and no longer.
		HandshakeTimeout: dialTimeout,
		MaxIdle:          1024,
		IdleTimeout:      60 * time.Second,
	}
	if tlsConfig != nil {
		u.scheme, u.wsScheme = "https", "wss"
	} else {
		// A plain worker's socket may be handed to the event-driven
		// relay (see takeover.go).
		u.dialer.NetDialContext = interruptible(recordingDial(d.DialContext))
	}
	return u
}

// close releases the config's connections and its reference to the
// worker's state.
func (u *upstream) close() {
	u.http.CloseIdleConnections()
	u.poll.CloseIdleConnections()
	_, _ = upstreamStates.Delete(u.addr)
	if u.shared != nil && !u.released.Swap(true) {
		u.shared.let()
	}
}

// withServerName returns cfg, or a copy of it naming addr's host as the
// server to verify when it names none, as net/http's Transport and
// gorilla's Dialer do; nil for a plain worker.
func withServerName(cfg *tls.Config, addr string) *tls.Config {
	if cfg == nil || cfg.ServerName != "" {
		return cfg
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	cfg = cfg.Clone()
	cfg.ServerName = host
	return cfg
}

func (u *upstream) wsURL(requestURI string) string { return u.wsScheme + "://" + u.addr + requestURI }

func (u *upstream) httpURL(requestURI string) string { return u.scheme + "://" + u.addr + requestURI }

// parseUpstream reads an upstream address, host:port, http://host:port or
// https://host:port, into host:port and its scheme ("" when none is
// written: the transport decides, as for reverse_proxy).
func parseUpstream(raw string) (addr, scheme string, err error) {
	addr = raw
	for _, s := range []string{"http", "https"} {
		if rest, ok := strings.CutPrefix(raw, s+"://"); ok {
			addr, scheme = rest, s
		}
	}
	if strings.Contains(addr, "://") {
		return "", "", fmt.Errorf("socketio_proxy: upstream %q: a worker is host:port, http://host:port or https://host:port", raw)
	}
	addr = strings.TrimSuffix(addr, "/")
	host, port, err := net.SplitHostPort(addr)
	// The address becomes the start of every URL the edge sends the
	// worker: a port that is no number, or a host with URL syntax in it
	// ("127.0.0.1:5000/admin?"), would move the requests elsewhere.
	if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 || strings.ContainsAny(host, "/?#@\\ \t") {
		return "", "", fmt.Errorf("socketio_proxy: upstream %q is not host:port; write it as e.g. 127.0.0.1:5001 or https://worker1.internal:5001", raw)
	}
	return addr, scheme, nil
}
