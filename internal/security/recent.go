package security

import (
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Record is one security event as the edge keeps it in memory.
type Record struct {
	Time      time.Time `json:"time"`
	Event     Event     `json:"event"`
	Reason    string    `json:"reason"`
	RemoteIP  string    `json:"remote_ip"`
	Origin    string    `json:"origin,omitempty"`
	UserID    string    `json:"user_id,omitempty"`
	Namespace string    `json:"namespace,omitempty"`
	Module    string    `json:"module"`
}

// RecentPerEvent is how many events of each kind Recent keeps: a flood
// of one kind (a client forging sids, say) pushes out only older events
// of that kind, never the rare namespace_denied before it.
const RecentPerEvent = 20

// recentMax bounds what Recent returns: a ring for every Event constant
// and one shared by any other kind, so an unexpected kind cannot grow
// memory either.
const recentMax = (len(events) + 1) * RecentPerEvent

// maxField bounds each text field of a kept event: an origin, and parts
// of some reasons, come from the client, and the rings must stay small
// whatever clients send.
const maxField = 256

// now is the clock of the records, a variable so tests can fix it.
var now = time.Now

// recent keeps the last RecentPerEvent events of each kind of the
// process, across config reloads, whatever the log level:
// the socketio_dashboard shows them without reading logs. seq orders
// them across rings, whatever the wall clock does.
var recent struct {
	mu    sync.Mutex
	seq   uint64
	rings [len(events) + 1]ring // one per events entry, then the rest
}

// ringOf is the index in recent.rings of each Event constant. It is
// read-only after init.
var ringOf = func() map[Event]int {
	m := make(map[Event]int, len(events))
	for i, ev := range events {
		m[ev] = i
	}
	return m
}()

type ring struct {
	buf  [RecentPerEvent]entry
	next int // where the next record goes
	n    int // records kept, up to RecentPerEvent
}

type entry struct {
	seq uint64
	rec Record
}

// at is the k-th newest record kept, k < r.n.
func (r *ring) at(k int) *entry {
	return &r.buf[(r.next-1-k+RecentPerEvent)%RecentPerEvent]
}

func remember(rec Record) {
	rec.Reason = clip(rec.Reason)
	rec.Origin = clip(rec.Origin)
	rec.UserID = clip(rec.UserID)
	rec.Namespace = clip(rec.Namespace)
	i, ok := ringOf[rec.Event]
	if !ok {
		i = len(events)
	}
	recent.mu.Lock()
	recent.seq++
	r := &recent.rings[i]
	r.buf[r.next] = entry{seq: recent.seq, rec: rec}
	r.next = (r.next + 1) % RecentPerEvent
	r.n = min(r.n+1, RecentPerEvent)
	recent.mu.Unlock()
}

// Recent returns the kept events, every kind merged, newest first; at
// most recentMax.
func Recent() []Record {
	recent.mu.Lock()
	defer recent.mu.Unlock()
	total := 0
	for i := range recent.rings {
		total += recent.rings[i].n
	}
	out := make([]Record, 0, total)
	var taken [len(recent.rings)]int
	for range total {
		// The newest record not yet taken heads one of the rings.
		best := -1
		for i := range recent.rings {
			r := &recent.rings[i]
			if taken[i] < r.n && (best < 0 || r.at(taken[i]).seq > recent.rings[best].at(taken[best]).seq) {
				best = i
			}
		}
		out = append(out, recent.rings[best].at(taken[best]).rec)
		taken[best]++
	}
	return out
}

// clip cuts s to maxField bytes, at a rune boundary, marking the cut.
func clip(s string) string {
	if len(s) <= maxField {
		return s
	}
	cut := maxField
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strings.ToValidUTF8(s[:cut], "") + "…"
}
