//go:build linux

package relay

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writevCalls counts the event engine's writes (see writevHook).
var writevCalls atomic.Int64

func init() { writevHook = func() { writevCalls.Add(1) } }

// A frame the filter peeks at and declines goes on in one write: its
// header, the peeked bytes and the rest of its payload together, not the
// header and the peeked bytes first (which doubled the engine's system
// calls per relayed message).
func TestAPeekedFrameGoesOnInOneWrite(t *testing.T) {
	p := newPair(t, Options{FromClient: upperFilter()}, true)
	p.relaying(t)
	const n = 50
	before := writevCalls.Load()
	for i := range n {
		msg := fmt.Sprintf(`42["echo",%d,"%s"]`, i, strings.Repeat("x", 64))
		require.NoError(t, p.client.WriteMessage(websocket.TextMessage, []byte(msg)))
		require.Equal(t, msg, readText(t, p.worker))
	}
	// Other tests' relays may write meanwhile, never fewer.
	assert.Less(t, writevCalls.Load()-before, int64(n+n/2), "writes for %d messages, each in one frame", n)
}
