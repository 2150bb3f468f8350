package socketioproxy

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
