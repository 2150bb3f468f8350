package socketioproxy

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// settlerOn is a settler reading st, whose free collects: the heap is
// then what is live, and a GC cycle has run.
func settlerOn(st *heapState, freed *int) *memorySettler {
	return &memorySettler{read: func() heapState { return *st }, free: func() {
		*freed++
		st.allocs += 1 << 10
		st.cycles++
		st.objects, st.free = st.live, 0
	}}
}

func TestMemorySettlerReturnsHeapOnlyOnceTheEdgeHasGoneQuiet(t *testing.T) {
	st := heapState{allocs: 1 << 30}
	freed := 0
	m := settlerOn(&st, &freed)

	st.objects, st.live = 120<<20, 10<<20
	assert.False(t, m.settle(), "first look: nothing to compare the allocations with")
	st.allocs += 50 << 20
	assert.False(t, m.settle(), "50 MB allocated since: the edge is busy and collects on its own")
	st.allocs += 100 << 10
	assert.True(t, m.settle(), "quiet, and 120 MB held for 10 MB live: a storm's leftovers")
	assert.Equal(t, 1, freed)
	assert.False(t, m.settle(), "quiet, but the heap is the same: the collection's own allocations do not count")

	st.objects, st.free, st.live = 11<<20, 2<<20, 10<<20
	assert.False(t, m.settle(), "3 MB over the live heap is not worth a collection")
	st.objects, st.free, st.live = 15<<20, 1<<20, 10<<20
	assert.True(t, m.settle(), "6 MB over 10 MB live, quiet: connections opened gently, then idle")
	assert.Equal(t, 2, freed)

	// A large live heap: a quarter of it is needed, and quiet allows a
	// 256th of it.
	st.objects, st.free, st.live = 1100<<20, 0, 1000<<20
	assert.False(t, m.settle(), "100 MB over 1 GB live is under a quarter")
	st.objects = 1300 << 20
	st.allocs += 5 << 20
	assert.False(t, m.settle(), "5 MB allocated since, over a 256th of the live heap: busy")
	st.allocs += 3 << 20
	assert.True(t, m.settle(), "3 MB allocated since, under a 256th: quiet")
	assert.Equal(t, 3, freed)
}

// Sessions that end on a quiet edge leave their state dead in a heap that
// no GC looks at: the last GC's live figure still counts them, so the
// heap does not look grown. Their number says it.
func TestMemorySettlerCollectsOnceSessionsHaveEnded(t *testing.T) {
	st := heapState{allocs: 1 << 30, objects: 16 << 20, live: 16 << 20, sessions: 2000}
	freed := 0
	m := settlerOn(&st, &freed)
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
