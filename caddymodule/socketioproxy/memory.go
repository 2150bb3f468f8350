package socketioproxy

import (
	"runtime/debug"
	runtimemetrics "runtime/metrics"
	"time"
)

// The Go runtime returns heap to the system only after a GC has found it
// free, and then slowly, and a GC starts only once the heap has doubled
// since the last one. An edge whose sessions are idle allocates almost
// nothing, so it goes on holding for minutes whatever the handshakes of
// its connections needed: twice the heap its sessions keep while they
// arrive gently, far more after a storm (every client of an edge
// reconnecting at once after a deploy or a restart), and all of it once
// their connections close. The bench measured an edge keeping 54 KB per
// connection of a storm of 2,000 10 s after they closed, 100 MB of it
// free heap, and 14.6 KB per idle WebSocket opened gently where the
// sessions kept 3.
//
// So the registry looks at the heap every settleInterval: when the edge
// allocated next to nothing since its last look (it has gone quiet), and
// the heap holds much more than the last GC found live, it collects and
// returns the free heap at once. An edge that allocates collects on its
// own and is left alone; a quiet one pays one collection of its live
// heap, which its idle sessions make small, each time it goes quiet
// after work.

// settleInterval is how often the settler looks at the heap.
const settleInterval = time.Second

// minReturn is the least free heap worth a forced collection; more is
// needed when the live heap is large (see settle).
const minReturn = 4 << 20

// quietAlloc is the most an edge may allocate between two looks and
// still count as quiet; more is needed when the live heap is large.
const quietAlloc = 1 << 20

// memorySamples are the runtime metrics the settle decision reads.
var memorySamples = []runtimemetrics.Sample{
	{Name: "/gc/heap/allocs:bytes"},              // allocated since the start
	{Name: "/memory/classes/heap/objects:bytes"}, // live and dead, not yet swept
	{Name: "/memory/classes/heap/free:bytes"},    // free, not returned
	{Name: "/gc/heap/live:bytes"},                // live at the last GC
}

// heapState is what settle reads of the runtime.
type heapState struct {
	allocs              uint64
	objects, free, live uint64
}

// memorySettler returns heap to the system once the edge has gone quiet.
type memorySettler struct {
	lastAllocs uint64
	looked     bool
	free       func()
	read       func() heapState
}

func newMemorySettler() *memorySettler {
	return &memorySettler{
		free: func() {
			debug.FreeOSMemory()
			metrics.heapReturns.Inc()
		},
		read: func() heapState {
			runtimemetrics.Read(memorySamples)
			return heapState{allocs: memorySamples[0].Value.Uint64(), objects: memorySamples[1].Value.Uint64(),
				free: memorySamples[2].Value.Uint64(), live: memorySamples[3].Value.Uint64()}
		},
	}
}

// settle collects and returns free heap when the edge allocated at most
// quietAlloc, or a 256th of its live heap, since the last call, and the
// heap (objects not yet swept, and free heap not returned) exceeds what
// the last GC found live by minReturn and by a quarter of it. It reports
// whether it did.
func (m *memorySettler) settle() bool {
	st := m.read()
	allocated := st.allocs - m.lastAllocs
	first := !m.looked
	m.lastAllocs, m.looked = st.allocs, true
	held := st.objects + st.free
	quiet := !first && allocated <= max(quietAlloc, st.live/256)
	if !quiet || held < st.live+max(minReturn, st.live/4) {
		return false
	}
	m.free()
	m.lastAllocs = m.read().allocs
	return true
}
