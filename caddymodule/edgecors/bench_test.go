package edgecors

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// The per-request origin decision, on each path a request can take.
func BenchmarkOriginAllow(b *testing.B) {
	set := mustOriginSet(b, "https://app.example.com", "http://localhost:5000", "http://127.0.0.1:5000",
		"http://[::1]:5000", "https://*.example.com", "https://*.corp.example.org")
	for _, bc := range []struct{ name, origin string }{
		{"exact", "http://localhost:5000"},
		{"exact_uppercase", "http://LOCALHOST:5000"},
		{"wildcard", "https://tenant.corp.example.org"},
		{"refused", "https://evil-example.com"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				set.allow(bc.origin)
			}
		})
	}
}

// discardWriter is a ResponseWriter whose header map is reused, so the
// benchmark measures the handler, not the recorder.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

func BenchmarkServeHTTP(b *testing.B) {
	h, _ := newTestHandler(b, &Handler{
		Origins:     []string{"https://app.example.com", "https://*.example.com"},
		Credentials: true,
		MaxAge:      600e9,
	})
	h.logger, h.security = zap.NewNop(), zap.NewNop()
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusOK)
		return nil
	})
	actual := func(origin string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "http://api.example.com/socket.io/?EIO=4&transport=polling", nil)
		r.Header.Set("Origin", origin)
		return r
	}
	for _, bc := range []struct {
		name string
		r    *http.Request
	}{
		{"actual_exact", actual("https://app.example.com")},
		{"actual_wildcard", actual("https://tenant.example.com")},
		{"actual_refused", actual("https://evil.example.net")},
		{"actual_no_origin", httptest.NewRequest(http.MethodGet, "/", nil)},
		{"preflight_allowed", preflight("https://app.example.com", "PUT", "content-type,x-csrftoken")},
		{"preflight_refused", preflight("https://evil.example.net", "PUT", "content-type")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w := &discardWriter{h: make(http.Header, 8)}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				_ = h.ServeHTTP(w, bc.r, next)
			}
		})
	}
}
