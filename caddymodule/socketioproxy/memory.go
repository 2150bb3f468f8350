package socketioproxy

import (
	"runtime/debug"
	runtimemetrics "runtime/metrics"
)

// After a storm of connections (every client of an edge reconnecting at
// once after a deploy or a restart), the Go heap holds what their
// handshakes needed long after they are done, and all of it once their
// connections close: the runtime returns heap to the system only after a
// GC has found it free, and an edge whose sessions are idle allocates too
// little to start a GC for minutes. The bench measured an edge keeping
// 54 KB per connection of a storm of 2,000, twice what the same
// connections cost opened gently, and all of it 10 s after they closed,
// 100 MB of it free heap.
//
// So the registry's sweep looks at the heap every sweepInterval: when no
// GC ran since its last look (the edge has gone quiet) and the heap holds
// far more than the last GC found live, it collects and returns the free
// heap at once. A busy edge collects on its own and is left alone.

// minReturn is the least heap worth a forced collection.
const minReturn = 32 << 20

// memorySamples are the runtime metrics the settle decision reads.
var memorySamples = []runtimemetrics.Sample{
	{Name: "/gc/cycles/total:gc-cycles"},
	{Name: "/memory/classes/heap/objects:bytes"}, // live and dead, not yet swept
	{Name: "/memory/classes/heap/free:bytes"},    // free, not returned
	{Name: "/gc/heap/live:bytes"},                // live at the last GC
}

// heapState is what settle reads of the runtime.
type heapState struct {
	cycles              uint64
	objects, free, live uint64
}

// memorySettler returns heap to the system once the edge has gone quiet
// after a storm.
type memorySettler struct {
	lastCycles uint64
	free       func()
	read       func() heapState
}

func newMemorySettler() *memorySettler {
	return &memorySettler{
		free: debug.FreeOSMemory,
		read: func() heapState {
			runtimemetrics.Read(memorySamples)
			return heapState{cycles: memorySamples[0].Value.Uint64(), objects: memorySamples[1].Value.Uint64(),
				free: memorySamples[2].Value.Uint64(), live: memorySamples[3].Value.Uint64()}
		},
	}
}

// settle collects and returns free heap when no GC ran since the last
// call and the heap (objects not yet swept, and free heap not returned)
// is at least minReturn and more than twice what the last GC found live.
// It reports whether it did.
func (m *memorySettler) settle() bool {
	st := m.read()
	quiet := st.cycles == m.lastCycles
	m.lastCycles = st.cycles
	held := st.objects + st.free
	if !quiet || held < minReturn || held <= 2*st.live {
		return false
	}
	m.free()
	m.lastCycles = m.read().cycles
	return true
}
