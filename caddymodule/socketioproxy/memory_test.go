package socketioproxy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestMemorySettlerReturnsFreeHeapOnlyWhenItOutweighsTheLiveHeap(t *testing.T) {
	var freed int
	var free, objects uint64
	m := &memorySettler{minInterval: time.Minute, free: func() { freed++ },
		read: func() (uint64, uint64) { return free, objects }}
	now := time.Now()

	free, objects = 10<<20, 5<<20 // not worth it
	assert.False(t, m.settle(now))
	free, objects = 100<<20, 60<<20 // a steady heap: free near live
	assert.False(t, m.settle(now))
	free, objects = 100<<20, 7<<20 // after a storm
	assert.True(t, m.settle(now))
	assert.False(t, m.settle(now.Add(time.Second)), "at most once per minInterval")
	assert.True(t, m.settle(now.Add(2*time.Minute)))
	assert.Equal(t, 2, freed)
}
