package socketioproxy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// observed serves path with one handler of a config of its own whose
// workers are addrs, as Provision leaves the process's state; it is
// released when the test ends.
func observed(t *testing.T, path string, rules map[string]*NamespaceRule, addrs ...string) {
	t.Helper()
	h := &Handler{Namespaces: rules, pool: &pool{}}
	set := &workerSet{}
	for _, addr := range addrs {
		st := loadUpstreamState(addr)
		set.upstreams = append(set.upstreams, &upstream{upstreamState: st})
		t.Cleanup(func() { _, _ = upstreamStates.Delete(addr) })
	}
	h.pool.set.Store(set)
	root := &fakeRoot{len(path)}
	p := h.newPolicy()
	s := loadPolicySlot(path, root, p)
	t.Cleanup(func() { s.release(path, root, p) })
}

// A snapshot of one Engine.IO path counts the sessions, handshakes and
// namespaces of that path's workers only, with that path's rules.
func TestObserveShowsThePathsWorkersSessionsAndRules(t *testing.T) {
	adminOnly := map[string]*NamespaceRule{"/admin": {Access: AccessRole, Roles: []string{"admin"}}}
	observed(t, "/observe-a/", adminOnly, "127.0.0.1:59101", "127.0.0.1:59102")
	observed(t, "/observe-b/", nil, "127.0.0.1:59103")
	reg := loadRegistry()
	t.Cleanup(func() { _, _ = registries.Delete(registryKey) })
	a1, a2, b := loadUpstreamState("127.0.0.1:59101"), loadUpstreamState("127.0.0.1:59102"), loadUpstreamState("127.0.0.1:59103")
	defer upstreamStates.Delete(a1.addr)
	defer upstreamStates.Delete(a2.addr)
	defer upstreamStates.Delete(b.addr)
	now := time.Now()
	for sid, up := range map[string]*upstreamState{"obs-a1": a1, "obs-a2": a1, "obs-a3": a2, "obs-b1": b} {
		reg.opened(sid, takeSeat(up), time.Minute, now)
		t.Cleanup(func() { reg.closed(sid) })
	}
	reg.relayStarted("obs-a1", a1, now)
	reg.relayStarted("obs-b1", b, now)
	reg.joined("obs-a1", "/admin")
	reg.joined("obs-a3", "/admin")
	reg.joined("obs-b1", "/admin")
	metrics.handshakes.WithLabelValues(a1.addr, "websocket").Add(2)
	metrics.handshakes.WithLabelValues(a1.addr, "polling").Inc()
	metrics.handshakes.WithLabelValues(b.addr, "websocket").Inc()

	snap, ok := Observe("/observe-a/")
	require.True(t, ok)
	assert.Equal(t, "/observe-a/", snap.Path)
	assert.False(t, snap.Time.IsZero())
	require.Len(t, snap.Upstreams, 2, "only the path's workers: %+v", snap.Upstreams)
	u1, u2 := snap.Upstreams[0], snap.Upstreams[1]
	assert.Equal(t, UpstreamStatus{Address: a1.addr, Healthy: true, Sessions: 2, Polling: 1, WebSocket: 1}, u1.UpstreamStatus)
	assert.Equal(t, TransportCounts{Total: 3, Polling: 1, WebSocket: 2}, u1.Handshakes)
	assert.Equal(t, UpstreamStatus{Address: a2.addr, Healthy: true, Sessions: 1, Polling: 1}, u2.UpstreamStatus)
	assert.Equal(t, TransportCounts{Total: 3, Polling: 2, WebSocket: 1}, snap.Sessions)
	assert.Equal(t, adminOnly, snap.Namespaces)
	snap.Namespaces["/admin"].Roles[0] = "anyone"
	assert.Equal(t, "admin", adminOnly["/admin"].Roles[0], "the proxy's rules are not the observer's to change")
	assert.Equal(t, []NamespaceStatus{{Namespace: "/admin", Sessions: 2}}, snap.LiveNamespaces, "obs-b1 is another path's")
	for _, dir := range []string{fromClient, fromUpstream} {
		assert.Contains(t, snap.Messages, dir)
		assert.Contains(t, snap.Bytes, dir)
	}

	snap, ok = Observe("/observe-b/")
	require.True(t, ok)
	require.Len(t, snap.Upstreams, 1)
	assert.Equal(t, TransportCounts{Total: 1, WebSocket: 1}, snap.Sessions)
	assert.Nil(t, snap.Namespaces)
}

// A path no handler serves is reported as such, with no worker.
func TestObserveOfAPathNobodyServes(t *testing.T) {
	observed(t, "/observe-served/", nil, "127.0.0.1:59104")
	assert.True(t, Serves("/observe-served/"))
	assert.False(t, Serves("/observe-nobody/"))
	assert.False(t, Serves("/observe-served"), "paths are compared exactly")
	snap, ok := Observe("/observe-nobody/")
	assert.False(t, ok)
	assert.Empty(t, snap.Upstreams)
	assert.Empty(t, snap.LiveNamespaces)
	assert.NotNil(t, snap.Messages)
}

// Once every config serving the path is cleaned up, it is no longer
// served.
func TestObserveFollowsTheRunningConfig(t *testing.T) {
	const path = "/observe-reload/"
	first, second := &Handler{pool: &pool{}}, &Handler{pool: &pool{}}
	first.pool.set.Store(&workerSet{upstreams: []*upstream{{upstreamState: loadUpstreamState("127.0.0.1:59105")}}})
	second.pool.set.Store(&workerSet{upstreams: []*upstream{{upstreamState: loadUpstreamState("127.0.0.1:59106")}}})
	defer upstreamStates.Delete("127.0.0.1:59105")
	defer upstreamStates.Delete("127.0.0.1:59106")
	r1, r2 := &fakeRoot{1}, &fakeRoot{2}
	p1, p2 := first.newPolicy(), second.newPolicy()
	s := loadPolicySlot(path, r1, p1)
	workers := func() []string {
		snap, _ := Observe(path)
		var out []string
		for _, u := range snap.Upstreams {
			out = append(out, u.Address)
		}
		return out
	}
	assert.Equal(t, []string{"127.0.0.1:59105"}, workers())
	loadPolicySlot(path, r2, p2) // a reload: the new config is provisioned first
	assert.Equal(t, []string{"127.0.0.1:59106"}, workers())
	s.release(path, r1, p1)
	assert.Equal(t, []string{"127.0.0.1:59106"}, workers())
	s.release(path, r2, p2)
	assert.False(t, Serves(path))
}
