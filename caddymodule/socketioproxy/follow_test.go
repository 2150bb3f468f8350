package socketioproxy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// A session's namespaces follow the worker's CONNECT replies and either
// side's DISCONNECTs, never the edge's denial markers.
func TestSessionNamespacesFollowConnectRepliesAndDisconnects(t *testing.T) {
	s := &registry{live: map[string]*session{}}
	up := &upstreamState{addr: "w:1"}
	s.opened("sid", takeSeat(up), time.Minute, time.Now())
	names := func() []string {
		var out []string
		s.each(func(_ *upstreamState, _ bool, ns []string) { out = append(out, ns...) })
		return out
	}

	s.follow("sid", []byte(`40{"sid":"a"}`), true)
	s.follow("sid", []byte(`40/admin,{"sid":"b"}`), true)
	s.follow("sid", []byte(`40/admin,{"sid":"b"}`), true) // counted once
	s.follow("sid", []byte(`42["x"]`), true)
	s.follow("sid", []byte(`44/chat,{"message":"no"}`), true)
	s.follow("sid", []byte(`40`+denialPrefix+`abc,{"sid":"c"}`), true)
	assert.Equal(t, []string{"/", "/admin"}, names())

	s.follow("sid", []byte(`41/admin,`), true)
	assert.Equal(t, []string{"/"}, names())
	s.follow("sid", []byte(`41`), true)
	assert.Empty(t, names())

	// From a long-poll's first bytes: a namespace cut short is not read.
	s.follow("sid", []byte(`40/adm`), false)
	s.follow("sid", []byte(`40`), false)
	assert.Empty(t, names())

	for i := range 100 {
		s.joined("sid", "/n"+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	assert.Len(t, names(), maxNamespacesPerSession, "bounded per session")
	s.follow("other", []byte(`40{"sid":"x"}`), true) // unknown session: ignored
}

// A client's DISCONNECT counts as python-socketio reads it.
func TestClientDisconnectLeavesTheNamespacePythonReads(t *testing.T) {
	h := &Handler{registry: &registry{live: map[string]*session{}}}
	h.registry.opened("sid", takeSeat(&upstreamState{}), time.Minute, time.Now())
	h.registry.joined("sid", "/admin")
	h.followClient("sid", []byte(`41/admin?x=1,`))
	h.registry.each(func(_ *upstreamState, _ bool, ns []string) { assert.Empty(t, ns) })
}
