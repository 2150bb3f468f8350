package socketioclient

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/flaskedge/flaskedge/caddymodule/socketioproxy"
)

// client is a provisioned handler whose log the test reads.
func client(t *testing.T, h *Handler) (*Handler, *observer.ObservedLogs) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	require.NoError(t, h.Provision(ctx))
	require.NoError(t, h.Validate())
	core, logs := observer.New(zap.WarnLevel)
	h.logger = zap.New(core)
	return h, logs
}

// proxy makes a socketio_proxy of the running config serve enginePath.
func proxy(t *testing.T, enginePath string) {
	t.Helper()
	p := &socketioproxy.Handler{Path: enginePath, Upstreams: []string{"127.0.0.1:59301"}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	require.NoError(t, p.Provision(ctx))
	t.Cleanup(func() { _ = p.Cleanup() })
}

func serve(h *Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusTeapot)
		return nil
	})
	if err := h.ServeHTTP(w, r, next); err != nil {
		panic(err)
	}
	return w
}

// The module is the embedded file, typed so a browser runs it as an ES
// module, and revalidated cheaply: the same edge answers 304.
func TestClientModuleIsServedWithETagAndRevalidated(t *testing.T) {
	h, _ := client(t, &Handler{})
	w := serve(h, httptest.NewRequest(http.MethodGet, "/socket.io-edge/client.js", nil))
	require.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, "application/javascript; charset=utf-8", w.Header().Get("Content-Type"))
	assert.Equal(t, "no-cache", w.Header().Get("Cache-Control"))
	assert.Equal(t, "nosniff", w.Header().Get("X-Content-Type-Options"))
	assert.Equal(t, string(module), w.Body.String())
	assert.Contains(t, w.Body.String(), "export function connect(io, options = {})")
	etag := w.Header().Get("ETag")
	require.NotEmpty(t, etag)

	r := httptest.NewRequest(http.MethodGet, "/socket.io-edge/client.js", nil)
	r.Header.Set("If-None-Match", etag)
	w = serve(h, r)
	assert.Equal(t, http.StatusNotModified, w.Code)
	assert.Empty(t, w.Body.String())

	w = serve(h, httptest.NewRequest(http.MethodHead, "/socket.io-edge/client.js", nil))
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Empty(t, w.Body.String())
}

// config.json holds what edge-client.js reads of it, the Engine.IO path
// first, and nothing it does not read.
func TestClientConfigIsWhatTheModuleReads(t *testing.T) {
	proxy(t, "/client-ws/")
	h, logs := client(t, &Handler{Path: "/js/edge/", EngineIOPath: "/client-ws/"})
	w := serve(h, httptest.NewRequest(http.MethodGet, "/js/edge/config.json", nil))
	require.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	assert.NotEmpty(t, w.Header().Get("ETag"))
	var cfg map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &cfg))
	assert.Equal(t, "/client-ws/", cfg["path"])
	assert.Equal(t, []any{[]any{"websocket"}, []any{"polling"}, []any{"polling", "websocket"}}, cfg["transports"])
	assert.EqualValues(t, 2, cfg["transport_failures"])
	assert.EqualValues(t, 25000, cfg["ping_interval_ms"])
	assert.EqualValues(t, 20000, cfg["ping_timeout_ms"])
	assert.EqualValues(t, 20000, cfg["connect_timeout_ms"])
	rc := cfg["reconnect"].(map[string]any)
	assert.Less(t, rc["initial_delay_ms"].(float64), rc["max_delay_ms"].(float64))
	assert.Zero(t, logs.Len(), "a socketio_proxy serves the path: %v", logs.All())

	// The keys are exactly those of the module's FALLBACK_CONFIG, the
	// ones it reads: a key added on one side only is caught here.
	js, err := os.ReadFile("edge-client.js")
	require.NoError(t, err)
	fallback := regexp.MustCompile(`(?s)const FALLBACK_CONFIG = \{(.*?)\n\};`).FindSubmatch(js)
	require.NotNil(t, fallback)
	var jsKeys []string
	for _, m := range regexp.MustCompile(`(?m)^  (\w+):`).FindAllSubmatch(fallback[1], -1) {
		jsKeys = append(jsKeys, string(m[1]))
	}
	var goKeys []string
	for k := range cfg {
		goKeys = append(goKeys, k)
	}
	slices.Sort(jsKeys)
	slices.Sort(goKeys)
	assert.Equal(t, jsKeys, goKeys)
	for _, k := range goKeys {
		assert.True(t, strings.Contains(string(js), "config."+k) || strings.Contains(string(js), "cfg."+k), "edge-client.js never reads %s", k)
	}
}

// A client pointed at a path no socketio_proxy serves would fail every
// connection: the edge says so, once.
func TestClientWarnsOnceWhenNoProxyServesItsPath(t *testing.T) {
	h, logs := client(t, &Handler{EngineIOPath: "/client-nobody/"})
	for range 3 {
		assert.Equal(t, http.StatusOK, serve(h, httptest.NewRequest(http.MethodGet, "/socket.io-edge/config.json", nil)).Code)
	}
	warnings := logs.FilterMessageSnippet("no socketio_proxy")
	require.Equal(t, 1, warnings.Len(), "%v", logs.All())
	assert.Equal(t, "/client-nobody/", warnings.All()[0].ContextMap()["engineio_path"])
}

// Only its two files are the handler's; everything else, edge_cors's
// diagnose under the same prefix included, goes on.
func TestClientAnswersOnlyItsFilesAndOnlyToReads(t *testing.T) {
	h, _ := client(t, &Handler{})
	for _, path := range []string{"/socket.io-edge/diagnose", "/socket.io-edge/nothing.js", "/socket.io-edge/", "/socket.io-edgy/client.js", "/client.js"} {
		assert.Equal(t, http.StatusTeapot, serve(h, httptest.NewRequest(http.MethodGet, path, nil)).Code, path)
	}
	w := serve(h, httptest.NewRequest(http.MethodPost, "/socket.io-edge/client.js", nil))
	assert.Equal(t, http.StatusMethodNotAllowed, w.Code)
	assert.Equal(t, "GET, HEAD", w.Header().Get("Allow"))
}

func TestClientPathsAreCheckedAtLoad(t *testing.T) {
	for _, tc := range []struct {
		h    Handler
		want string
	}{
		{Handler{Path: "/socket.io/"}, "overlaps the Engine.IO path"},
		{Handler{Path: "/socket.io/client/"}, "overlaps the Engine.IO path"},
		{Handler{Path: "/"}, "must be a prefix of its own"},
		{Handler{Path: "edge/"}, "must be a prefix of its own that starts and ends with a slash"},
		{Handler{Path: "/edge"}, "must be a prefix"},
		{Handler{EngineIOPath: "/ws"}, `engineio_path "/ws" must start and end with a slash`},
		{Handler{Path: "/edge/", EngineIOPath: "/ws/"}, ""},
	} {
		h := tc.h
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		require.NoError(t, h.Provision(ctx))
		err := h.Validate()
		if tc.want == "" {
			assert.NoError(t, err, "%+v", tc.h)
		} else if assert.Error(t, err, "%+v", tc.h) {
			assert.Contains(t, err.Error(), tc.want)
			assert.True(t, strings.HasPrefix(err.Error(), "socketio_client: "), err.Error())
		}
		cancel()
	}
}
