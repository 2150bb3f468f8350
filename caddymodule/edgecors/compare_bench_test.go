package edgecors

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/rs/cors"
	"go.uber.org/zap"
)

// BenchmarkCompare runs edge_cors and rs/cors, configured alike, on the
// same requests in one run (docs/BENCHMARKS.md has the figures):
//
//	go test -run '^$' -bench '^BenchmarkCompare$' -benchmem -count 6 ./caddymodule/edgecors/
//
// jub0bs/cors, the other library the issue names, could not be fetched
// through the module proxy these machines use, so it is not here.
//
// Both see the same app: it writes a 200 with no headers, through a
// ResponseWriter whose header map is reused, so the figures are each
// middleware's own cost.
func BenchmarkCompare(b *testing.B) {
	origins := []string{"https://app.example.com", "https://*.example.com"}
	methods := []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}
	headers := []string{"Content-Type", "X-Requested-With", "X-CSRFToken", "X-CSRF-Token"}
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })

	h, _ := newTestHandler(b, &Handler{
		Origins: origins, Credentials: true, MaxAge: 600e9,
		AllowedMethods: methods, AllowedHeaders: headers,
	})
	h.logger, h.security = zap.NewNop(), zap.NewNop()
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		app.ServeHTTP(w, r)
		return nil
	})
	edge := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _ = h.ServeHTTP(w, r, next) })

	rs := cors.New(cors.Options{
		AllowedOrigins: origins, AllowCredentials: true, MaxAge: 600,
		AllowedMethods: methods, AllowedHeaders: headers,
	}).Handler(app)

	actual := func(origin string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "http://api.example.com/api/items", nil)
		r.Header.Set("Origin", origin)
		return r
	}
	for _, bc := range []struct {
		name   string
		r      *http.Request
		status int
	}{
		{"actual_allowed", actual("https://app.example.com"), http.StatusOK},
		{"preflight_allowed", preflight("https://app.example.com", "PUT", "content-type,x-csrftoken"), http.StatusNoContent},
		{"actual_disallowed", actual("https://evil.example.net"), http.StatusOK},
		{"preflight_disallowed", preflight("https://evil.example.net", "PUT", "content-type"), 0},
	} {
		for _, m := range []struct {
			name string
			h    http.Handler
		}{{"edge_cors", edge}, {"rs_cors", rs}} {
			b.Run(bc.name+"/"+m.name, func(b *testing.B) {
				w := &statusWriter{discardWriter: discardWriter{h: make(http.Header, 8)}}
				m.h.ServeHTTP(w, bc.r)
				if bc.status != 0 && w.status != bc.status {
					b.Fatalf("status %d, want %d", w.status, bc.status)
				}
				b.ReportAllocs()
				for b.Loop() {
					clear(w.h)
					m.h.ServeHTTP(w, bc.r)
				}
			})
		}
	}
}

type statusWriter struct {
	discardWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) { w.status = status }
