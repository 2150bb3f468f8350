package socketioproxy

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/flaskedge/flaskedge/internal/sticky"
)

// upstream is one Flask-SocketIO worker.
type upstream struct {
	addr   string // host:port
	tag    sticky.Tag
	http   *http.Transport
	dialer *websocket.Dialer

	// sessions counts the live Engine.IO sessions this edge has on the
	// worker, including handshakes in flight.
	sessions atomic.Int64
	// checkedHealthy is the last active health check's verdict (true
	// when there are no active checks).
	checkedHealthy atomic.Bool
	// downUntil is set by passive failure detection: until then, in
	// Unix nanoseconds, the worker counts as unhealthy.
	downUntil atomic.Int64
}

// writeBuffers lends WebSocket write buffers to whichever connection is
// writing a message at the moment, so an idle relayed connection holds
// none.
var writeBuffers = &sync.Pool{}

func newUpstream(addr string, tag sticky.Tag, dialTimeout time.Duration) *upstream {
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	u := &upstream{
		addr: addr,
		tag:  tag,
		http: &http.Transport{
			DialContext: d.DialContext,
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
			NetDialContext:   d.DialContext,
			HandshakeTimeout: dialTimeout,
			ReadBufferSize:   1024,
			WriteBufferPool:  writeBuffers,
			// Not negotiated: the relay passes frames as they are and a
			// compressed frame could not be inspected.
			EnableCompression: false,
		},
	}
	u.checkedHealthy.Store(true)
	return u
}

// healthy reports whether new sessions may go to the worker and existing
// ones may keep using it.
func (u *upstream) healthy(now time.Time) bool {
	return u.checkedHealthy.Load() && now.UnixNano() >= u.downUntil.Load()
}

// markDown takes the worker out of rotation for d after a failure to reach
// it.
func (u *upstream) markDown(now time.Time, d time.Duration) {
	u.downUntil.Store(now.Add(d).UnixNano())
}

func (u *upstream) close() {
	u.http.CloseIdleConnections()
}

func (u *upstream) wsURL(requestURI string) string { return "ws://" + u.addr + requestURI }

func (u *upstream) httpURL(requestURI string) string { return "http://" + u.addr + requestURI }

// parseUpstream reads an upstream address: host:port, or http://host:port.
func parseUpstream(raw string) (string, error) {
	addr := strings.TrimPrefix(raw, "http://")
	if strings.Contains(addr, "://") {
		return "", fmt.Errorf("socketio_proxy: upstream %q: only plain http workers are supported; write it as host:port", raw)
	}
	addr = strings.TrimSuffix(addr, "/")
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		return "", fmt.Errorf("socketio_proxy: upstream %q is not host:port; write it as e.g. 127.0.0.1:5001", raw)
	}
	return addr, nil
}
