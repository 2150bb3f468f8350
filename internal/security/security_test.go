package security

import (
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestEventLineCarriesTheFieldsAFilterNeeds(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	l := zap.New(core).Named(LoggerName)
	r := httptest.NewRequest("GET", "/socket.io/?EIO=4", nil)
	r.RemoteAddr = "203.0.113.9:5555"
	r.Header.Set("Origin", "https://evil.example")
	r.Header.Set("Cookie", "session=secret")

	Log(l, "socketio_proxy", NamespaceDenied, "role admin required", r, Fields{UserID: "42", Namespace: "/admin"})

	entries := logs.All()
	if assert.Len(t, entries, 1) {
		e := entries[0]
		assert.Equal(t, zapcore.WarnLevel, e.Level)
		assert.Equal(t, LoggerName, e.LoggerName)
		assert.Equal(t, map[string]any{
			"event": "namespace_denied", "reason": "role admin required", "remote_ip": "203.0.113.9",
			"module": "socketio_proxy", "origin": "https://evil.example", "user_id": "42", "namespace": "/admin",
		}, e.ContextMap())
	}
}
