package socketioproxy

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// The browser client: an ES module wrapping the page's own
// socket.io-client, and config.json, what it needs to know of this
// handler's configuration. Both are served under ClientPath, built once
// at Provision. edge_cors makes the same prefix public (any origin, no
// credentials), since a page on a refused origin must still load the
// client to be told why it is refused.

//go:embed clientjs/edge-client.js
var clientModule []byte

// The Engine.IO timings the client reports. python-engineio 4's defaults:
// the edge does not configure the workers, and reports what they use
// unless told otherwise.
const (
	engineIOPingInterval = 25 * time.Second
	engineIOPingTimeout  = 20 * time.Second
)

// clientConfig is config.json. Its field names are the client module's
// contract.
type clientConfig struct {
	// Path is the Engine.IO endpoint, socket.io-client's path option.
	Path string `json:"path"`
	// Transports is the fallback ladder: the client starts on the first
	// rung and moves to the next after TransportFailures failures in a
	// row that only the transport explains.
	Transports        [][]string `json:"transports"`
	TransportFailures int        `json:"transport_failures"`
	PingIntervalMS    int64      `json:"ping_interval_ms"`
	PingTimeoutMS     int64      `json:"ping_timeout_ms"`
	ConnectTimeoutMS  int64      `json:"connect_timeout_ms"`
	Reconnect         struct {
		InitialDelayMS int64   `json:"initial_delay_ms"`
		MaxDelayMS     int64   `json:"max_delay_ms"`
		Factor         float64 `json:"factor"`
		Jitter         float64 `json:"jitter"`
	} `json:"reconnect"`
	// Namespaces are the rules of Handler.Namespaces: what connecting to
	// each requires.
	Namespaces map[string]*NamespaceRule `json:"namespaces"`
	MaxPayload int64                     `json:"max_payload"`
	// ConnectRate is the limit on new sessions per address, if any.
	ConnectRate *clientRate `json:"connect_rate,omitempty"`
}

type clientRate struct {
	Events   int   `json:"events"`
	WindowMS int64 `json:"window_ms"`
	Burst    int   `json:"burst"`
}

// clientAsset is one file under ClientPath.
type clientAsset struct {
	body        []byte
	etag        string
	contentType string
}

func newClientAsset(body []byte, contentType string) clientAsset {
	sum := sha256.Sum256(body)
	return clientAsset{body: body, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`, contentType: contentType}
}

// clientFiles are the files served under ClientPath.
type clientFiles struct {
	prefix string
	byName map[string]clientAsset
}

func newClientFiles(h *Handler) (*clientFiles, error) {
	cfg := clientConfig{
		Path:              h.Path,
		Transports:        [][]string{{"websocket"}, {"polling"}, {"polling", "websocket"}},
		TransportFailures: 2,
		PingIntervalMS:    engineIOPingInterval.Milliseconds(),
		PingTimeoutMS:     engineIOPingTimeout.Milliseconds(),
		// socket.io-client's, with room for a dial and a worker's answer.
		ConnectTimeoutMS: (20 * time.Second).Milliseconds(),
		Namespaces:       h.Namespaces,
		MaxPayload:       h.MaxPayload,
	}
	// A dead worker is out of rotation for FailDuration, and a handshake
	// that reaches it is moved at once: a quick first retry finds a live
	// one, later ones spread out.
	cfg.Reconnect.InitialDelayMS = 500
	cfg.Reconnect.MaxDelayMS = 10_000
	cfg.Reconnect.Factor = 2
	cfg.Reconnect.Jitter = 0.5
	if cfg.Namespaces == nil {
		cfg.Namespaces = map[string]*NamespaceRule{}
	}
	if rl := h.RateLimits; rl != nil && rl.Connect != nil {
		cfg.ConnectRate = &clientRate{Events: rl.Connect.Events, WindowMS: time.Duration(rl.Connect.Window).Milliseconds(), Burst: rl.Connect.burst()}
	}
	config, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("socketio_proxy: client config: %v", err)
	}
	return &clientFiles{
		prefix: h.ClientPath,
		byName: map[string]clientAsset{
			"client.js":   newClientAsset(clientModule, "application/javascript; charset=utf-8"),
			"config.json": newClientAsset(config, "application/json"),
		},
	}, nil
}

// serves reports whether r is for the client files; false when
// client_path is off.
func (c *clientFiles) serves(r *http.Request) bool {
	return c != nil && strings.HasPrefix(r.URL.Path, c.prefix)
}

// serve answers a request under the prefix: the file, with an ETag a
// browser revalidates on every load (no-cache), so a new edge's client
// reaches pages at once and an unchanged one costs a 304.
func (c *clientFiles) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "socketio_proxy: the client files are read with GET", http.StatusMethodNotAllowed)
		return
	}
	a, ok := c.byName[strings.TrimPrefix(r.URL.Path, c.prefix)]
	if !ok {
		http.Error(w, "socketio_proxy: no such client file; the module is "+c.prefix+"client.js", http.StatusNotFound)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", a.contentType)
	hdr.Set("ETag", a.etag)
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

// validateClientPath checks ClientPath against the Engine.IO path.
func (h *Handler) validateClientPath() error {
	p := h.ClientPath
	switch {
	case p == "":
		return nil
	case !strings.HasPrefix(p, "/") || !strings.HasSuffix(p, "/") || p == "/":
		return fmt.Errorf("socketio_proxy: client_path %q must be a prefix that starts and ends with a slash, e.g. /socket.io-edge/", p)
	case strings.HasPrefix(p, h.Path) || strings.HasPrefix(h.Path, p):
		return fmt.Errorf("socketio_proxy: client_path %q overlaps the Engine.IO path %q; give the client its own prefix, e.g. /socket.io-edge/", p, h.Path)
	}
	return nil
}
