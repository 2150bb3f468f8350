package socketioproxy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// A worker's live count has one way up (takeSeat) and one way down
// (seat.free, once): a handshake's seat is freed when its call ends
// unless the registry took it over, which frees it with the session.
func TestSeatIsFreedExactlyOnce(t *testing.T) {
	up := &upstreamState{addr: "w:1"}
	reg := &registry{live: map[string]*session{}}

	failed := &call{seat: takeSeat(up)}
	assert.EqualValues(t, 1, up.live.Load(), "a handshake in flight counts")
	failed.end()
	failed.end()
	assert.EqualValues(t, 0, up.live.Load(), "a failed handshake frees its seat once")

	ok := &call{seat: takeSeat(up)}
	reg.opened("sid", ok.seat, time.Minute, time.Now())
	ok.seat = nil // as opened does
	ok.end()
	assert.EqualValues(t, 1, up.live.Load(), "the registry holds the session's seat")
	reg.closed("sid")
	reg.closed("sid")
	assert.EqualValues(t, 0, up.live.Load())

	// A session first seen here (opened through another edge) takes a
	// seat of its own; the sweep frees it.
	reg.seen("other", up, time.Now().Add(-time.Hour))
	assert.EqualValues(t, 1, up.live.Load())
	reg.sweep(time.Now())
	assert.EqualValues(t, 0, up.live.Load())

	// A handshake moved to another worker frees its first seat.
	next := &upstreamState{addr: "w:2"}
	moved := &call{seat: takeSeat(up)}
	moved.seat.free()
	moved.seat = takeSeat(next)
	moved.end()
	assert.EqualValues(t, 0, up.live.Load()+next.live.Load())
}
