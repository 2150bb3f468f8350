package socketiodashboard

import (
	"context"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/flaskedge/flaskedge/internal/crosscheck"
)

// serverContext is a provisioning context inside an HTTP server, with
// the origin guards in front of the handler.
func serverContext(t *testing.T, guards ...crosscheck.Guard) caddy.Context {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.WithValue(context.Background(), caddyhttp.ServerCtxKey, new(caddyhttp.Server))})
	t.Cleanup(cancel)
	for i, g := range guards {
		owner := &guards[i]
		crosscheck.AddGuard(ctx, owner, g)
		t.Cleanup(func() { crosscheck.RemoveGuard(owner) })
	}
	return ctx
}

func observed(engineIOPath string) (*Handler, *observer.ObservedLogs) {
	core, logs := observer.New(zap.WarnLevel)
	return &Handler{EngineIOPath: engineIOPath, logger: zap.New(core)}, logs
}

func TestDashboardOfAPathTheGuardInFrontDoesNotCheckWarnsAtLoad(t *testing.T) {
	h, logs := observed("/ws/")
	h.crossCheck(serverContext(t, crosscheck.Guard{EngineIOPath: "/socket.io/"}))
	require.Equal(t, 1, logs.Len(), "%v", logs.All())
	w := logs.All()[0]
	assert.Contains(t, w.Message, "set engineio_path to socketio_proxy's path")
	assert.Equal(t, "/ws/", w.ContextMap()["engineio_path"])
	assert.Equal(t, []any{"/socket.io/"}, w.ContextMap()["guarded"])
}

// The dashboard needs no guard, and one of its path is what it should
// have: neither is worth a word.
func TestDashboardBehindAGuardOfItsPathOrNoneIsSilent(t *testing.T) {
	for _, guards := range [][]crosscheck.Guard{nil, {{EngineIOPath: "/a/"}, {EngineIOPath: "/ws/"}}} {
		h, logs := observed("/ws/")
		h.crossCheck(serverContext(t, guards...))
		assert.Zero(t, logs.Len(), "%v: %v", guards, logs.All())
	}
	h, logs := observed("/ws/")
	h.crossCheck(caddy.Context{Context: context.Background()})
	assert.Zero(t, logs.Len(), "outside a server nothing is known: %v", logs.All())
}
