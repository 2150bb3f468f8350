package socketioproxy

import (
	"runtime/debug"
	runtimemetrics "runtime/metrics"
	"time"
)

// After a storm of connections (every client of an edge reconnecting at
// once after a deploy or a restart), the Go heap holds the memory their
// handshakes needed long after they are done: the runtime returns free
// heap to the system only once a GC has lowered its goal, and an edge
// whose sessions are idle allocates too little to start one for minutes.
// The bench measured an edge keeping 54 KB per connection of a storm of
// 2,000, twice what the same connections cost opened gently, most of it
// free heap, and all of it 10 s after they closed. So the registry's
// sweep looks at the heap every sweepInterval, and when free heap not yet
// returned is more than twice the live heap (and worth the trouble), it
// returns it at once. In a steady state, free heap stays near the live
// heap (GOGC=100) and nothing is forced.

// minReturn is the least free heap worth a forced return to the system.
const minReturn = 32 << 20

// memorySamples are the runtime metrics the settle decision reads.
var memorySamples = []runtimemetrics.Sample{
	{Name: "/memory/classes/heap/free:bytes"},    // free, not returned
	{Name: "/memory/classes/heap/objects:bytes"}, // live and not yet swept
}

// memorySettler returns free heap to the system after a storm, at most
// once per minInterval.
type memorySettler struct {
	last        time.Time
	minInterval time.Duration
	free        func()
	read        func() (free, objects uint64)
}

func newMemorySettler() *memorySettler {
	return &memorySettler{
		minInterval: 30 * time.Second,
		free:        debug.FreeOSMemory,
		read: func() (uint64, uint64) {
			runtimemetrics.Read(memorySamples)
			return memorySamples[0].Value.Uint64(), memorySamples[1].Value.Uint64()
		},
	}
}

// settle returns free heap to the system if it is at least minReturn and
// more than twice the live heap, and reports whether it did.
func (m *memorySettler) settle(now time.Time) bool {
	if now.Sub(m.last) < m.minInterval {
		return false
	}
	free, objects := m.read()
	if free < minReturn || free <= 2*objects {
		return false
	}
	m.last = now
	m.free()
	return true
}
