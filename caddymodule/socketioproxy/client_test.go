package socketioproxy

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func clientHandler(t *testing.T) *Handler {
	t.Helper()
	h := &Handler{
		Path:       DefaultPath,
		ClientPath: "/socket.io-edge/",
		MaxPayload: 4096,
		Namespaces: map[string]*NamespaceRule{
			"/admin": {Access: AccessRole, Roles: []string{"admin"}},
			"*":      {Access: AccessAuthenticated},
		},
		RateLimits: &RateLimits{Connect: &Rate{Events: 2, Window: caddy.Duration(20 * time.Second)}},
	}
	require.NoError(t, h.validateClientPath())
	var err error
	h.client, err = newClientFiles(h)
	require.NoError(t, err)
	return h
}

// The module is the embedded file, typed so a browser runs it as an ES
// module, and revalidated cheaply: the same edge answers 304.
func TestClientModuleIsServedWithETagAndRevalidated(t *testing.T) {
	h := clientHandler(t)
	w := serve(h, request(http.MethodGet, "/socket.io-edge/client.js", "", ""))
	require.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, "application/javascript; charset=utf-8", w.Header().Get("Content-Type"))
	assert.Equal(t, "no-cache", w.Header().Get("Cache-Control"))
	assert.Equal(t, "nosniff", w.Header().Get("X-Content-Type-Options"))
	assert.Equal(t, string(clientModule), w.Body.String())
	assert.Contains(t, w.Body.String(), "export function connect(io, options = {})")
	etag := w.Header().Get("ETag")
	require.NotEmpty(t, etag)

	r := request(http.MethodGet, "/socket.io-edge/client.js", "", "")
	r.Header.Set("If-None-Match", etag)
	w = serve(h, r)
	assert.Equal(t, http.StatusNotModified, w.Code)
	assert.Empty(t, w.Body.String())

	w = serve(h, request(http.MethodHead, "/socket.io-edge/client.js", "", ""))
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Empty(t, w.Body.String())
}

// config.json is what the module needs of this handler's configuration,
// so it never has to be told twice.
func TestClientConfigIsComputedFromTheHandler(t *testing.T) {
	h := clientHandler(t)
	w := serve(h, request(http.MethodGet, "/socket.io-edge/config.json", "", ""))
	require.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	assert.NotEmpty(t, w.Header().Get("ETag"))
	var cfg map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &cfg))
	assert.Equal(t, "/socket.io/", cfg["path"])
	assert.Equal(t, []any{[]any{"websocket"}, []any{"polling"}, []any{"polling", "websocket"}}, cfg["transports"])
	assert.EqualValues(t, 25000, cfg["ping_interval_ms"])
	assert.EqualValues(t, 20000, cfg["ping_timeout_ms"])
	assert.EqualValues(t, 4096, cfg["max_payload"])
	assert.Equal(t, map[string]any{
		"/admin": map[string]any{"access": "role", "roles": []any{"admin"}},
		"*":      map[string]any{"access": "authenticated"},
	}, cfg["namespaces"])
	assert.Equal(t, map[string]any{"events": 2.0, "window_ms": 20000.0, "burst": 2.0}, cfg["connect_rate"])
	rc := cfg["reconnect"].(map[string]any)
	assert.Less(t, rc["initial_delay_ms"].(float64), rc["max_delay_ms"].(float64))
}

func TestClientPathAnswersOnlyItsFilesAndOnlyToReads(t *testing.T) {
	h := clientHandler(t)
	w := serve(h, request(http.MethodGet, "/socket.io-edge/../secret", "", ""))
	assert.Equal(t, http.StatusNotFound, w.Code)
	w = serve(h, request(http.MethodGet, "/socket.io-edge/nothing.js", "", ""))
	assert.Equal(t, http.StatusNotFound, w.Code)
	assert.Contains(t, w.Body.String(), "/socket.io-edge/client.js")
	w = serve(h, request(http.MethodPost, "/socket.io-edge/client.js", "", ""))
	assert.Equal(t, http.StatusMethodNotAllowed, w.Code)
	assert.Equal(t, "GET, HEAD", w.Header().Get("Allow"))
	// Outside the prefix, the next handler answers as before.
	w = serve(h, request(http.MethodGet, "/socket.io-edgy", "", ""))
	assert.Equal(t, http.StatusTeapot, w.Code)
}

func TestClientPathOffPassesEverythingOn(t *testing.T) {
	h := &Handler{Path: DefaultPath}
	w := serve(h, request(http.MethodGet, "/socket.io-edge/client.js", "", ""))
	assert.Equal(t, http.StatusTeapot, w.Code)
}

func TestClientPathMustBeAPrefixOfItsOwn(t *testing.T) {
	for _, p := range []string{"/socket.io/", "/socket.io/client/", "/", "edge/", "/edge"} {
		h := &Handler{Path: DefaultPath, ClientPath: p}
		err := h.validateClientPath()
		if assert.Error(t, err, p) {
			assert.Contains(t, err.Error(), "client_path")
		}
	}
}
