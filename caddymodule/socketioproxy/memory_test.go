package socketioproxy

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestMemorySettlerReturnsHeapOnlyOnceTheEdgeHasGoneQuiet(t *testing.T) {
	st := heapState{cycles: 7}
	freed := 0
	m := &memorySettler{read: func() heapState { return st }, free: func() { freed++; st.cycles++ }}

	st.objects, st.live = 120<<20, 10<<20
	assert.False(t, m.settle(), "first look: no GC count to compare with yet")
	st.cycles++
	assert.False(t, m.settle(), "a GC ran since: the edge is busy and collects on its own")
	assert.True(t, m.settle(), "quiet, and 120 MB held for 10 MB live: a storm's leftovers")
	assert.Equal(t, 1, freed)

	st.objects, st.free, st.live = 15<<20, 10<<20, 8<<20
	assert.False(t, m.settle(), "not worth it")
	st.objects, st.free, st.live = 90<<20, 10<<20, 60<<20
	assert.False(t, m.settle(), "a steady heap: under twice the live heap")
	assert.Equal(t, 1, freed)
}
