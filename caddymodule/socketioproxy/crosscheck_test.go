package socketioproxy

import (
	"context"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/flaskedge/flaskedge/internal/crosscheck"
)

// serverContext is a provisioning context inside an HTTP server, with
// the origin guards in front of the handler.
func serverContext(t *testing.T, guards ...crosscheck.Guard) caddy.Context {
	t.Helper()
	srv := new(caddyhttp.Server)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.WithValue(context.Background(), caddyhttp.ServerCtxKey, srv)})
	t.Cleanup(cancel)
	for i, g := range guards {
		owner := &guards[i]
		crosscheck.AddGuard(ctx, owner, g)
		t.Cleanup(func() { crosscheck.RemoveGuard(owner) })
	}
	return ctx
}

func observedHandler() (*Handler, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.WarnLevel)
	return &Handler{logger: zap.New(core)}, logs
}

func TestNoOriginGuardInFrontIsAWarningNamingTheFix(t *testing.T) {
	h, logs := observedHandler()
	require.NoError(t, h.crossCheck(serverContext(t)))
	require.Equal(t, 1, logs.Len())
	msg := logs.All()[0].Message
	assert.Contains(t, msg, "no origin guard in front of it")
	assert.Contains(t, msg, "put edge_cors before it")
	assert.Contains(t, msg, "flask_socketio")
}

func TestAGuardOfThePathIsSilent(t *testing.T) {
	h, logs := observedHandler()
	h.Path = "/ws/"
	require.NoError(t, h.crossCheck(serverContext(t, crosscheck.Guard{EngineIOPath: "/ws/", ClientPath: "/socket.io-edge/"})))
	assert.Zero(t, logs.Len())
}

func TestAGuardOfAnotherPathIsRefused(t *testing.T) {
	h, _ := observedHandler()
	require.NoError(t, h.crossCheck(serverContext(t, crosscheck.Guard{EngineIOPath: DefaultPath})), "the default path is the guard's default")
	h.Path = "/ws/"
	err := h.crossCheck(serverContext(t, crosscheck.Guard{EngineIOPath: DefaultPath}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `socketio_proxy: Engine.IO path "/ws/" is not the engineio_path of the edge_cors in front of it (/socket.io/)`)
	assert.Contains(t, err.Error(), `set edge_cors's engineio_path to "/ws/"`)
}

// Outside an HTTP server (a handler provisioned alone) nothing is said.
func TestOutsideAServerNothingIsChecked(t *testing.T) {
	h, logs := observedHandler()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	require.NoError(t, h.crossCheck(ctx))
	assert.Zero(t, logs.Len())
}
