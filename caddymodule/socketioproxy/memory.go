package socketioproxy

import (
	"runtime"
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
// either it allocated a good part of its live heap since it last
// collected this way (the garbage of that work, and the heap it grew to,
// are held until a GC, and a GC that ran during the work counted what
// was in flight as live), or a quarter of the sessions the last GC saw
// have ended since (their state is dead, but only a GC can tell, and a
// quiet edge runs none), it collects and returns the free heap at once.
// It collects twice, as the pools keep what they held for one collection
// more: after 2,000 WebSockets opened at once, one collection left 2 KB
// per connection more live than two did. An edge that allocates collects
// on its own and is left alone; a quiet one pays two collections of its
// live heap, which its idle sessions make small, each time it goes quiet
// after work, and never more than a hundredth of its time.

// settleInterval is how often the settler looks at the heap.
const settleInterval = time.Second

// minReturn is the least allocation since the last forced collection
// worth another; more is needed when the live heap is large (see
// settle).
const minReturn = 1 << 20

// quietAlloc is the most an edge may allocate between two looks and
// still count as quiet; more is needed when the live heap is large.
const quietAlloc = 1 << 20

// minEnded is the least number of ended sessions worth a forced
// collection; more is needed when many sessions are live (see settle).
const minEnded = 100

// settleShare bounds the time spent in forced collections: after one
// that took d, the next waits settleShare*d.
const settleShare = 100

// memorySamples are the runtime metrics the settle decision reads.
var memorySamples = []runtimemetrics.Sample{
	{Name: "/gc/heap/allocs:bytes"}, // allocated since the start
	{Name: "/gc/heap/live:bytes"},   // live at the last GC
	{Name: "/gc/cycles/total:gc-cycles"},
}

// heapState is what settle reads of the runtime, and the edge's
// sessions.
type heapState struct {
	allocs, live uint64
	cycles       uint64
	sessions     int
}

// memorySettler returns heap to the system once the edge has gone quiet.
type memorySettler struct {
	lastAllocs uint64
	// settledAllocs is allocs after the last forced collection (or at
	// the first look).
	settledAllocs uint64
	lastCycles    uint64
	// gcSessions is how many sessions there were at the last GC (as
	// of the first look after it).
	gcSessions int
	looked     bool
	// notBefore is when the next forced collection may run.
	notBefore time.Time
	free      func()
	read      func() heapState
	now       func() time.Time
}

// newMemorySettler makes the settler of an edge whose sessions are
// counted by sessions.
func newMemorySettler(sessions func() int) *memorySettler {
	return &memorySettler{
		free: func() {
			// Two collections: the first moves what sync.Pools hold
			// (a storm's buffers) aside, the second frees it.
			runtime.GC()
			debug.FreeOSMemory()
			metrics.heapReturns.Inc()
		},
		read: func() heapState {
			runtimemetrics.Read(memorySamples)
			return heapState{allocs: memorySamples[0].Value.Uint64(), live: memorySamples[1].Value.Uint64(),
				cycles: memorySamples[2].Value.Uint64(), sessions: sessions()}
		},
		now: time.Now,
	}
}

// settle collects and returns free heap when the edge allocated at most
// quietAlloc, or a 256th of its live heap, since the last call, and
// either it allocated minReturn, and a quarter of its live heap, since
// the last forced collection, or at least minEnded sessions, and a
// quarter of those there were at the last GC, have ended since; at most
// a settleShare-th of the time. It reports whether it did.
func (m *memorySettler) settle() bool {
	st := m.read()
	allocated := st.allocs - m.lastAllocs
	first := !m.looked
	if first {
		m.settledAllocs = st.allocs
	}
	if first || st.cycles != m.lastCycles {
		m.gcSessions = st.sessions
	}
	m.lastAllocs, m.lastCycles, m.looked = st.allocs, st.cycles, true
	quiet := !first && allocated <= max(quietAlloc, st.live/256)
	worked := st.allocs-m.settledAllocs >= max(minReturn, st.live/4)
	ended := m.gcSessions - st.sessions
	start := m.now()
	if !quiet || !(worked || ended >= max(minEnded, m.gcSessions/4)) || start.Before(m.notBefore) {
		return false
	}
	m.free()
	end := m.now()
	m.notBefore = end.Add(settleShare * end.Sub(start))
	after := m.read()
	m.lastAllocs, m.lastCycles, m.gcSessions, m.settledAllocs = after.allocs, after.cycles, after.sessions, after.allocs
	return true
}
