package park

import (
	"sync"
	"time"
)

// A woken connection is served by a worker: a goroutine that, once done,
// waits for the next woken connection instead of ending. A connection's
// request runs deep in Caddy's handler chain, whose frames outgrow a new
// goroutine's stack: on a new goroutine per wake-up, the runtime copied
// the stack to a larger one for every request. A worker's stack has
// grown already. Workers are used last in, first out (the busiest stay
// warm); at most maxIdleWorkers wait (a burst's others end with their
// job), and one idle for longer than workerIdle ends.
var workers struct {
	mu    sync.Mutex
	idle  []*worker // the most recently idle last
	sweep *time.Timer
}

// workerIdle is how long a worker waits for work before it ends; past
// it, the GC will have shrunk its stack anyway.
const workerIdle = 2 * time.Second

// maxIdleWorkers bounds the workers kept waiting: their stacks, 8 to
// 32 KiB each.
const maxIdleWorkers = 16

type worker struct {
	jobs  chan *Conn // nil ends the worker
	since time.Time  // idle since
}

// dispatch calls c.ready(c) on an idle worker, or on a new one.
func dispatch(c *Conn) {
	workers.mu.Lock()
	if n := len(workers.idle); n > 0 {
		w := workers.idle[n-1]
		workers.idle[n-1] = nil
		workers.idle = workers.idle[:n-1]
		workers.mu.Unlock()
		w.jobs <- c
		return
	}
	workers.mu.Unlock()
	w := &worker{jobs: make(chan *Conn, 1)}
	go w.run(c)
}

func (w *worker) run(c *Conn) {
	for c != nil {
		c.ready(c)
		c = nil
		workers.mu.Lock()
		if len(workers.idle) >= maxIdleWorkers {
			workers.mu.Unlock()
			return
		}
		w.since = time.Now()
		workers.idle = append(workers.idle, w)
		if workers.sweep == nil {
			workers.sweep = time.AfterFunc(workerIdle, sweepWorkers)
		}
		workers.mu.Unlock()
		c = <-w.jobs
	}
}

// sweepWorkers ends the workers idle for longer than workerIdle: the
// ones at the start of the list.
func sweepWorkers() {
	workers.mu.Lock()
	defer workers.mu.Unlock()
	workers.sweep = nil
	cut := time.Now().Add(-workerIdle)
	n := 0
	for n < len(workers.idle) && workers.idle[n].since.Before(cut) {
		workers.idle[n].jobs <- nil // buffered: never blocks
		n++
	}
	rest := copy(workers.idle, workers.idle[n:])
	clear(workers.idle[rest:])
	workers.idle = workers.idle[:rest]
	if len(workers.idle) > 0 {
		workers.sweep = time.AfterFunc(workerIdle, sweepWorkers)
	}
}

// idleWorkers is how many workers wait for work.
func idleWorkers() int {
	workers.mu.Lock()
	defer workers.mu.Unlock()
	return len(workers.idle)
}
