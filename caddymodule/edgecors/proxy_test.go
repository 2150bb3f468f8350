package edgecors

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/gorilla/websocket"
)

// edgeInFrontOf runs a real Caddy (in this process, admin off, nothing
// persisted) whose only route is edge_cors configured by edgeJSON and
// then Caddy's own reverse_proxy to upstream, and returns its base URL.
// Caddy is process-global: tests using it must not run in parallel.
func edgeInFrontOf(t *testing.T, edgeJSON string, upstream *httptest.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := `{
		"admin": {"disabled": true, "config": {"persist": false}},
		"logging": {"logs": {"default": {"level": "ERROR"}}},
		"apps": {"http": {"servers": {"edge": {
			"listen": ["` + addr + `"],
			"automatic_https": {"disable": true},
			"routes": [{"handle": [
				` + edgeJSON + `,
				{"handler": "reverse_proxy", "upstreams": [{"dial": "` + strings.TrimPrefix(upstream.URL, "http://") + `"}]}
			]}]
		}}}}
	}`
	if err := caddy.Load([]byte(cfg), true); err != nil {
		t.Fatalf("loading Caddy: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	return "http://" + addr
}

// reverse_proxy copies upstream headers with Add: an app answering CORS
// itself must not give the browser a second Access-Control-Allow-Origin.
func TestBehindReverseProxyTheBrowserSeesOneAllowOrigin(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Allow-Credentials", "true")
		w.Header().Set("Vary", "Accept-Encoding")
		_, _ = io.WriteString(w, `0{"sid":"abc"}`)
	}))
	defer upstream.Close()
	edge := edgeInFrontOf(t, `{"handler": "edge_cors", "origins": ["https://app.example.com"], "credentials": true}`, upstream)

	req, _ := http.NewRequest(http.MethodGet, edge+"/socket.io/?EIO=4&transport=polling", nil)
	req.Header.Set("Origin", "https://app.example.com")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != `0{"sid":"abc"}` {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	if got := resp.Header.Values("Access-Control-Allow-Origin"); len(got) != 1 || got[0] != "https://app.example.com" {
		t.Errorf("Access-Control-Allow-Origin = %q, want exactly one, the page's origin", got)
	}
	if got := resp.Header.Values("Access-Control-Allow-Credentials"); len(got) != 1 {
		t.Errorf("Access-Control-Allow-Credentials = %q, want exactly one", got)
	}
	if got := resp.Header.Values("Vary"); len(got) != 1 || got[0] != "Accept-Encoding, Origin" {
		t.Errorf("Vary = %q", got)
	}

	req.Header.Set("Origin", "https://evil.example.net")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Values("Access-Control-Allow-Origin"); len(got) != 0 {
		t.Errorf("foreign origin: the app's Access-Control-Allow-Origin %q got through", got)
	}
}

// reverse_proxy writes 101 and then hijacks through
// http.ResponseController; both must pass the wrapper.
func TestBehindReverseProxyWebSocketsFromAllowedOriginsWork(t *testing.T) {
	upgrader := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, http.Header{"Access-Control-Allow-Origin": {"*"}})
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, msg); err != nil {
				return
			}
		}
	}))
	defer upstream.Close()
	edge := edgeInFrontOf(t, `{"handler": "edge_cors", "origins": ["https://app.example.com"]}`, upstream)
	url := "ws" + strings.TrimPrefix(edge, "http") + "/socket.io/?EIO=4&transport=websocket"

	c, resp, err := websocket.DefaultDialer.Dial(url, http.Header{"Origin": {"https://app.example.com"}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if got := resp.Header.Values("Access-Control-Allow-Origin"); len(got) != 1 || got[0] != "https://app.example.com" {
		t.Errorf("101 Access-Control-Allow-Origin = %q", got)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("2probe")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "2probe" {
		t.Fatalf("echo %q, %v", msg, err)
	}

	if _, resp, err := websocket.DefaultDialer.Dial(url, http.Header{"Origin": {"https://evil.example.net"}}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: err=%v resp=%v; want 403", err, resp)
	}
}
