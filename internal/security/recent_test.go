package security

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// resetRecent empties the ring and fixes its clock for one test.
func resetRecent(t *testing.T) {
	t.Helper()
	recent.mu.Lock()
	recent.next, recent.full = 0, false
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

func TestRecentIsBoundedAndKeepsTheNewest(t *testing.T) {
	resetRecent(t)
	for i := range RecentSize + 7 {
		LogClient(zap.NewNop(), "socketio_proxy", RateLimited, fmt.Sprint(i), Client{IP: "192.0.2.1"}, Fields{})
	}
	got := Recent()
	require.Len(t, got, RecentSize)
	assert.Equal(t, fmt.Sprint(RecentSize+6), got[0].Reason)
	assert.Equal(t, "7", got[RecentSize-1].Reason)
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
