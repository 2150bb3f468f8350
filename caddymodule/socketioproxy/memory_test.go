package socketioproxy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// settlerOn is a settler reading st on a clock of its own, whose free
// collects: a GC cycle runs, and takes cost of the clock.
func settlerOn(st *heapState, freed *int, cost time.Duration) *memorySettler {
	clock := time.Unix(0, 0)
	return &memorySettler{read: func() heapState { return *st }, now: func() time.Time { return clock }, free: func() {
		*freed++
		st.allocs += 1 << 10
		st.cycles++
		clock = clock.Add(cost)
	}}
}

func TestMemorySettlerReturnsHeapOnlyOnceTheEdgeHasGoneQuiet(t *testing.T) {
	st := heapState{allocs: 1 << 30}
	freed := 0
	m := settlerOn(&st, &freed, 0)

	st.live = 10 << 20
	assert.False(t, m.settle(), "first look: nothing to compare the allocations with")
	st.allocs += 50 << 20
	assert.False(t, m.settle(), "50 MB allocated since: the edge is busy and collects on its own")
	st.allocs += 100 << 10
	assert.True(t, m.settle(), "quiet after 50 MB of work: its garbage and the heap it grew to")
	assert.Equal(t, 1, freed)
	assert.False(t, m.settle(), "quiet, nothing done since: the collection's own allocations do not count")

	st.allocs += 1 << 20
	assert.False(t, m.settle(), "1 MB allocated since, under a quarter of 10 MB live")
	st.allocs += 1 << 20
	assert.False(t, m.settle(), "2 MB allocated since, under a quarter of 10 MB live")
	st.allocs += 1 << 20
	assert.True(t, m.settle(), "3 MB allocated since, quiet: connections opened gently, then idle")
	assert.Equal(t, 2, freed)

	// A GC that ran during the work does not excuse it: what it found
	// live was in flight.
	st.allocs += 30 << 20
	st.cycles++
	assert.False(t, m.settle(), "busy")
	assert.True(t, m.settle(), "quiet after a GC that ran amid the work")
	assert.Equal(t, 3, freed)

	// A large live heap: a quarter of it is needed, and quiet allows a
	// 256th of it.
	st.live = 1000 << 20
	st.allocs += 200 << 20
	assert.False(t, m.settle(), "200 MB allocated over 1 GB live: busy, and under a quarter")
	st.allocs += 3 << 20
	assert.False(t, m.settle(), "quiet, but 203 MB is under a quarter of 1 GB")
	st.allocs += 50 << 20
	assert.False(t, m.settle(), "50 MB allocated since, over a 256th of the live heap: busy")
	st.allocs += 3 << 20
	assert.True(t, m.settle(), "3 MB allocated since, under a 256th: quiet")
	assert.Equal(t, 4, freed)
}

// Forced collections take at most a settleShare-th of the edge's time,
// however often it goes quiet after work.
func TestMemorySettlerSpendsAtMostAHundredthOfTheTime(t *testing.T) {
	st := heapState{allocs: 1 << 30, live: 400 << 20}
	freed := 0
	m := settlerOn(&st, &freed, 300*time.Millisecond)
	clock := time.Unix(0, 0)
	m.now = func() time.Time { return clock }
	m.free = func() { freed++; st.cycles++; clock = clock.Add(300 * time.Millisecond) }
	assert.False(t, m.settle(), "first look")
	// Every second, 101 MB of work, then a quiet second: 8 min 20 s.
	for range 250 {
		st.allocs += 101 << 20
		m.settle()
		clock = clock.Add(time.Second)
		m.settle()
		clock = clock.Add(time.Second)
	}
	// 500 s at most 1% in collections of 0.3 s: 16 at most.
	assert.LessOrEqual(t, freed, 17, "forced collections")
	assert.GreaterOrEqual(t, freed, 10, "the quiet edge returned its heap too seldom")
}

// Sessions that end on a quiet edge leave their state dead in a heap that
// no GC looks at: the last GC's live figure still counts them, so the
// heap does not look grown. Their number says it.
func TestMemorySettlerCollectsOnceSessionsHaveEnded(t *testing.T) {
	st := heapState{allocs: 1 << 30, live: 16 << 20, sessions: 2000}
	freed := 0
	m := settlerOn(&st, &freed, 0)
	assert.False(t, m.settle(), "first look")
	assert.False(t, m.settle(), "quiet, nothing ended")

	st.sessions = 1900
	st.allocs += 200 << 10
	assert.False(t, m.settle(), "100 ended of 2,000: under a quarter")
	st.sessions = 0
	st.allocs += 500 << 10
	assert.True(t, m.settle(), "every session ended, quiet: their state is garbage")
	assert.Equal(t, 1, freed)
	assert.False(t, m.settle(), "counted afresh from the collection")

	st.sessions = 150
	st.cycles++ // a GC ran as they arrived: it saw 150
	assert.False(t, m.settle())
	st.sessions = 80
	assert.False(t, m.settle(), "70 ended: fewer than minEnded")
	st.sessions = 40
	assert.True(t, m.settle(), "110 ended")

	st.sessions = 4000
	st.cycles++
	assert.False(t, m.settle())
	st.sessions = 3000
	st.allocs += 40 << 20
	assert.False(t, m.settle(), "a quarter ended, but the edge is busy")
	st.allocs += 100 << 10
	assert.True(t, m.settle(), "a quarter ended, quiet")
	assert.Equal(t, 3, freed)
}
