package socketioproxy

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
	"weak"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/sticky"
)

// unreadBytes tells a worker connection whose reads stopped at the open
// packet from one where gorilla read further, against a real gorilla
// client and server.
func TestUnreadBytesAfterTheOpenPacket(t *testing.T) {
	for _, tc := range []struct {
		name   string
		send   []string // what the worker sends after the upgrade
		opened bool     // whether the edge read the first message
		unread bool
	}{
		{"open packet only", []string{`0{"sid":"a"}`}, true, false},
		{"open packet read ahead of a second message", []string{`0{"sid":"a"}`, "2"}, true, true},
		{"a long open packet", []string{`0{"sid":"` + strings.Repeat("a", 300) + `"}`}, true, false},
		{"nothing read after the reply", nil, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sent := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
				require.NoError(t, err)
				defer c.Close()
				// One write for everything, as a worker flushing two
				// packets at once: gorilla's first read gets them all.
				var frames []byte
				for _, m := range tc.send {
					frames = append(frames, 0x81, byte(len(m)))
					if len(m) > 125 {
						frames = append(frames[:len(frames)-1], 126, byte(len(m)>>8), byte(len(m)))
					}
					frames = append(frames, m...)
				}
				_, _ = c.NetConn().Write(frames)
				close(sent)
				_, _, _ = c.ReadMessage()
			}))
			defer srv.Close()
			d := websocket.Dialer{NetDialContext: recordingDial((&net.Dialer{}).DialContext), ReadBufferSize: 1024}
			conn, _, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
			require.NoError(t, err)
			defer conn.Close()
			<-sent
			if tc.opened {
				_, msg, err := conn.ReadMessage()
				require.NoError(t, err)
				require.Equal(t, tc.send[0], string(msg))
			}
			assert.Equal(t, tc.unread, unreadBytes(conn, tc.opened))
		})
	}
}

// markerKey carries a request's marker in its context.
type markerKey struct{}

// Once the worker's WebSocket is open, nothing of the request that asked
// for it may stay reachable: the relay outlives the request by hours.
// gorilla bounds the handshake with a context timer; a stopped timer
// stays in the runtime's timer heap until it would have fired (unless a
// quarter of the heap is such), holding its context. Derived from the
// request's, that context held Caddy's state of the request and net/http's
// buffers, about 10 KB, per connection opened in the last dial_timeout:
// 1.2 KB per idle WebSocket of the bench.
func TestTheWorkersWebSocketHoldsNothingOfTheRequest(t *testing.T) {
	// One P, and many live timers on it, as an edge with idle sessions
	// has: the runtime then leaves stopped timers in its heap.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for range 100 {
		tm := time.AfterFunc(time.Hour, func() {})
		defer tm.Stop()
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		_, _, _ = c.ReadMessage()
	}))
	defer srv.Close()
	up := newUpstream(strings.TrimPrefix(srv.URL, "http://"), sticky.Tag{1}, time.Minute, nil)
	defer up.close()

	var held weak.Pointer[[256]byte]
	conn := func() *websocket.Conn {
		marker := new([256]byte)
		held = weak.Make(marker)
		ctx, cancel := context.WithCancel(context.WithValue(context.Background(), markerKey{}, marker))
		defer cancel() // as net/http does once the handler returns
		r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/socket.io/?EIO=4&transport=websocket", nil)
		conn, _, ok := (&Handler{}).dialWorker(httptest.NewRecorder(), &call{r: r, up: up}, r.RequestURI)
		require.True(t, ok)
		return conn
	}()
	defer conn.Close()
	runtime.GC()
	runtime.GC()
	assert.Nil(t, held.Value(), "the request's context is still reachable from the worker's open WebSocket")
}
