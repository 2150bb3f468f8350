package security

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// resetRecent empties the rings and fixes their clock for one test.
func resetRecent(t *testing.T) {
	t.Helper()
	recent.mu.Lock()
	recent.rings = [len(recent.rings)]ring{}
	recent.mu.Unlock()
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	now = func() time.Time { at = at.Add(time.Second); return at }
	t.Cleanup(func() { now = time.Now })
}

// The dashboard must see events even when the security logger is off.
func TestRecentKeepsEventsWhateverTheLogLevel(t *testing.T) {
	resetRecent(t)
	r := httptest.NewRequest("GET", "/socket.io/?EIO=4", nil)
	r.RemoteAddr = "203.0.113.9:5555"
	r.Header.Set("Origin", "https://evil.example")
	r.Header.Set("Cookie", "session=secret")

	Log(zap.NewNop(), "edge_cors", OriginRefused, "origin not allowed", r, Fields{})
	LogClient(zap.NewNop(), "socketio_proxy", NamespaceDenied, "role missing", Client{IP: "198.51.100.1"},
		Fields{UserID: "7", Namespace: "/admin", Origin: "https://app.example"})

	got := Recent()
	require.Len(t, got, 2)
	assert.Equal(t, Record{Time: got[0].Time, Event: NamespaceDenied, Reason: "role missing", RemoteIP: "198.51.100.1",
		Origin: "https://app.example", UserID: "7", Namespace: "/admin", Module: "socketio_proxy"}, got[0], "newest first")
	assert.Equal(t, Record{Time: got[1].Time, Event: OriginRefused, Reason: "origin not allowed", RemoteIP: "203.0.113.9",
		Origin: "https://evil.example", Module: "edge_cors"}, got[1])
	assert.True(t, got[0].Time.After(got[1].Time))
	assert.NotContains(t, fmt.Sprint(got), "secret", "a cookie is never kept")
}

func TestRecentKeepsTheNewestOfEachEvent(t *testing.T) {
	resetRecent(t)
	for i := range RecentPerEvent + 7 {
		LogClient(zap.NewNop(), "socketio_proxy", RateLimited, fmt.Sprint(i), Client{IP: "192.0.2.1"}, Fields{})
	}
	got := Recent()
	require.Len(t, got, RecentPerEvent)
	assert.Equal(t, fmt.Sprint(RecentPerEvent+6), got[0].Reason)
	assert.Equal(t, "7", got[RecentPerEvent-1].Reason)
}

// 1000 forged sids must not push the one namespace refusal out of the
// dashboard, whether it came before the flood or after it.
func TestARareEventSurvivesAFloodOfAnother(t *testing.T) {
	flood := func() {
		for range 1000 {
			LogClient(zap.NewNop(), "socketio_proxy", SIDTampered, "sid not sealed by this edge", Client{IP: "203.0.113.66"}, Fields{})
		}
	}
	rare := func() {
		LogClient(zap.NewNop(), "socketio_proxy", NamespaceDenied, "role missing", Client{IP: "198.51.100.7"},
			Fields{UserID: "7", Namespace: "/admin"})
	}
	for _, tt := range []struct {
		name   string
		first  func()
		second func()
		at     int // where the rare event is, newest first
	}{
		{"before the flood", rare, flood, RecentPerEvent},
		{"after the flood", flood, rare, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resetRecent(t)
			tt.first()
			tt.second()
			got := Recent()
			require.Len(t, got, RecentPerEvent+1)
			assert.Equal(t, NamespaceDenied, got[tt.at].Event)
			assert.Equal(t, "/admin", got[tt.at].Namespace)
			for i, rec := range got {
				if i != tt.at {
					assert.Equal(t, SIDTampered, rec.Event)
				}
			}
		})
	}
}

// Events of every kind come back as one list, newest first, whatever
// ring each is in.
func TestRecentMergesEveryEventNewestFirst(t *testing.T) {
	resetRecent(t)
	order := []Event{RateLimited, OriginRefused, RateLimited, CookieExpired, OriginRefused, Event("not_an_edge_event")}
	for i, ev := range order {
		LogClient(zap.NewNop(), "edge_cors", ev, fmt.Sprint(i), Client{IP: "192.0.2.1"}, Fields{})
	}
	got := Recent()
	require.Len(t, got, len(order))
	for i, rec := range got {
		want := len(order) - 1 - i
		assert.Equal(t, order[want], rec.Event)
		assert.Equal(t, fmt.Sprint(want), rec.Reason)
		if i > 0 {
			assert.True(t, rec.Time.Before(got[i-1].Time))
		}
	}
}

// Kinds outside the Event constants share one ring, so however many a
// caller invents, memory stays bounded.
func TestRecentIsBoundedWhateverTheEvents(t *testing.T) {
	resetRecent(t)
	for i := range 1000 {
		LogClient(zap.NewNop(), "socketio_proxy", Event(fmt.Sprint("invented_", i)), "x", Client{IP: "192.0.2.1"}, Fields{})
		for _, ev := range events {
			LogClient(zap.NewNop(), "socketio_proxy", ev, "x", Client{IP: "192.0.2.1"}, Fields{})
		}
	}
	got := Recent()
	require.Len(t, got, recentMax)
	assert.Equal(t, Event("invented_999"), got[len(events)].Event)
}

// A new Event constant must get its own ring, or a flood of it could
// hide the other kinds that share the spare one.
func TestEveryEventHasItsOwnRing(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "security.go", nil, 0)
	require.NoError(t, err)
	var declared []string
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "Event" {
				for _, name := range vs.Names {
					declared = append(declared, name.Name)
				}
			}
		}
	}
	require.NotEmpty(t, declared)
	assert.Len(t, events, len(declared), "every Event constant in security.go belongs in events: %v", declared)
	assert.Len(t, ringOf, len(events), "events lists a kind twice")
}

func BenchmarkRemember(b *testing.B) {
	rec := Record{Time: time.Now(), Event: SIDTampered, Reason: "sid not sealed by this edge", RemoteIP: "203.0.113.66", Module: "socketio_proxy"}
	b.ReportAllocs()
	for range b.N {
		remember(rec)
	}
}

// A client chooses its Origin header; what the ring keeps of it is
// bounded and still valid UTF-8.
func TestRecentClipsLongFieldsAtARuneBoundary(t *testing.T) {
	resetRecent(t)
	long := "https://" + strings.Repeat("é", 4000)
	LogClient(zap.NewNop(), "edge_cors", OriginRefused, "origin not allowed", Client{IP: "192.0.2.1", Origin: long}, Fields{})
	got := Recent()[0].Origin
	assert.LessOrEqual(t, len(got), maxField+len("…"))
	assert.True(t, utf8.ValidString(got))
	assert.True(t, strings.HasSuffix(got, "…"))
}
