package socketioproxy

import (
	"sync/atomic"
	"testing"

	"go.uber.org/zap"

	"github.com/flaskedge/flaskedge/internal/identity"
	"github.com/flaskedge/flaskedge/internal/relay"
	"github.com/flaskedge/flaskedge/internal/security"
)

// BenchmarkFilterPeek is what a WebSocket session's filters cost each
// relayed message on the common path (a 32-byte peek, then streamed):
// reading the client's packet head, following its attachments, and
// looking at the worker's, with and without namespace rules.
func BenchmarkFilterPeek(b *testing.B) {
	msg := []byte(`42["echo",{"at":1796586225221,"pad":"xxxxxxxxxxxxxxxx"}]`)
	for _, tc := range []struct {
		name  string
		rules map[string]*NamespaceRule
	}{
		{"no rules", nil},
		{"admin rule", map[string]*NamespaceRule{"/admin": {Access: AccessRole, Roles: []string{"admin"}}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := &Handler{Namespaces: tc.rules, registry: &registry{live: map[string]*session{}}, security: zap.NewNop(), logger: zap.NewNop()}
			pol := h.newPolicy()
			live := newLiveIdentity(identity.Identity{UserID: "7", Roles: "user"}, zap.NewNop())
			var upgraded atomic.Bool
			f := h.filters(func() *policy { return pol }, "sid", security.Client{IP: "192.0.2.1"}, live, new(relay.Injector), &upgraded)
			fromClient, fromUpstream := &f.fromClient, &f.fromUpstream
			head := msg[:clientPeek]
			b.ReportAllocs()
			for b.Loop() {
				if fromClient.Peek(head) || fromUpstream.Peek(head) {
					b.Fatal("a plain event was read whole")
				}
			}
		})
	}
}
