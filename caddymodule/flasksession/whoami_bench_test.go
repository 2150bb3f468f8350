package flasksession

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
)

// benchWhoami provisions a provider whose whoami endpoint is a local
// httptest server, with the clock at testEpoch.
func benchWhoami(b *testing.B) *FlaskSession {
	b.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Cookie("session")
		fmt.Fprintf(w, `{"id":"alice","role":"admin","n":%d}`, len(c.Value))
	}))
	b.Cleanup(srv.Close)
	fs := FlaskSession{SecretKeys: []string{testSecret}, Whoami: &Whoami{URLs: []string{srv.URL}}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	b.Cleanup(cancel)
	if err := fs.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = fs.Cleanup() })
	fs.logger = zap.NewNop()
	old := now
	now = func() time.Time { return time.Unix(testEpoch, 0) }
	b.Cleanup(func() { now = old })
	return &fs
}

// go test -run '^$' -bench Whoami -benchmem ./caddymodule/flasksession/
func BenchmarkWhoami(b *testing.B) {
	fs := benchWhoami(b)
	cookie := userCookie(b, "alice", "user")
	r := requestWithCookie(cookie)
	if user, _, err := fs.Authenticate(nil, r); err != nil || user.Metadata["role"] != "admin" {
		b.Fatal(user, err)
	}

	// The whole provider on a cached session: verify, decode, cache hit,
	// identity headers.
	b.Run("authenticate_hit", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			fs.Authenticate(nil, r)
		}
	})
	// The cache alone: SHA-256 of the cookie and an LRU hit.
	b.Run("lookup_hit", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := fs.whoami.lookup(r, cookie, "alice"); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The same from every CPU: the LRU has one lock.
	b.Run("lookup_hit_parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := fs.whoami.lookup(r, cookie, "alice"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	// A miss: the subrequest over loopback to a Go server, once per
	// session per TTL (a Flask worker takes longer to answer).
	b.Run("lookup_miss", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			fs.whoami.cache.Purge()
			if _, err := fs.whoami.lookup(r, cookie, "alice"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
