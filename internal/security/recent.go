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

// RecentSize is how many events Recent keeps.
const RecentSize = 100

// maxField bounds each text field of a kept event: an origin, and parts
// of some reasons, come from the client, and the ring must stay small
// whatever clients send.
const maxField = 256

// now is the clock of the records, a variable so tests can fix it.
var now = time.Now

// recent is a ring of the last RecentSize events of the process, across
// config reloads, whatever the log level: socketio_proxy's dashboard shows
// them without reading logs.
var recent struct {
	mu   sync.Mutex
	ring [RecentSize]Record
	next int // where the next record goes
	full bool
}

func remember(rec Record) {
	rec.Reason = clip(rec.Reason)
	rec.Origin = clip(rec.Origin)
	rec.UserID = clip(rec.UserID)
	rec.Namespace = clip(rec.Namespace)
	recent.mu.Lock()
	recent.ring[recent.next] = rec
	recent.next = (recent.next + 1) % RecentSize
	recent.full = recent.full || recent.next == 0
	recent.mu.Unlock()
}

// Recent returns the kept events, newest first.
func Recent() []Record {
	recent.mu.Lock()
	defer recent.mu.Unlock()
	n := recent.next
	if recent.full {
		n = RecentSize
	}
	out := make([]Record, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, recent.ring[(recent.next-i+RecentSize)%RecentSize])
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
