package edgecors

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// One handler, many requests at once, of every kind, over real
// connections: each response must carry its own request's answer and
// nothing of another's. The wrappers come from a pool, so a wrapper
// kept or cleared at the wrong moment shows up here as a wrong header,
// and, under go test -race, as a data race.
func TestConcurrentRequestsEachGetTheirOwnAnswer(t *testing.T) {
	h, _ := newTestHandler(t, &Handler{
		Origins:     []string{"https://app.example.com", "https://*.example.org"},
		Credentials: true,
		MaxAge:      600e9,
	})
	h.security = zap.NewNop()
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		// The app answers CORS itself and echoes which request this was.
		w.Header().Add("Access-Control-Allow-Origin", "*")
		w.Header().Set("X-Request", r.URL.Query().Get("n"))
		if r.URL.Query().Get("flush") != "" {
			_ = http.NewResponseController(w).Flush()
		}
		_, err := io.WriteString(w, r.URL.Query().Get("n"))
		return err
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h.ServeHTTP(w, r, next); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	}))
	defer srv.Close()

	type kind struct {
		method, path, origin string
		preflight, upgrade   bool
		status               int
		acao                 string // "" for none
	}
	kinds := []kind{
		{"GET", "/api/items", "https://app.example.com", false, false, 200, "https://app.example.com"},
		{"GET", "/api/items", "https://t1.example.org", false, false, 200, "https://t1.example.org"},
		{"POST", "/api/items", "https://evil.example.net", false, false, 200, ""},
		{"GET", "/api/items", "", false, false, 200, ""},
		{"GET", "/socket.io/?EIO=4&transport=polling&flush=1", "https://t2.example.org", false, false, 200, "https://t2.example.org"},
		{"GET", "/socket.io/?EIO=4&transport=polling", "https://evil.example.net", false, false, 403, ""},
		{"GET", "/socket.io/?EIO=4&transport=websocket", "https://evil.example.net", false, true, 403, ""},
		{"OPTIONS", "/api/items", "https://app.example.com", true, false, 204, "https://app.example.com"},
		{"OPTIONS", "/api/items", "https://evil.example.net", true, false, 403, ""},
	}

	const goroutines, perGoroutine = 16, 150
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			defer client.CloseIdleConnections()
			for i := range perGoroutine {
				k := kinds[(g+i)%len(kinds)]
				n := fmt.Sprintf("%d-%d", g, i)
				sep := "?"
				if strings.Contains(k.path, "?") {
					sep = "&"
				}
				req, _ := http.NewRequest(k.method, srv.URL+k.path+sep+"n="+n, nil)
				if k.origin != "" {
					req.Header.Set("Origin", k.origin)
				}
				if k.preflight {
					req.Header.Set("Access-Control-Request-Method", "PUT")
					req.Header.Set("Access-Control-Request-Headers", "content-type")
				}
				if k.upgrade {
					req.Header.Set("Connection", "Upgrade")
					req.Header.Set("Upgrade", "websocket")
				}
				res, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				acao := res.Header.Values("Access-Control-Allow-Origin")
				switch {
				case res.StatusCode != k.status:
					errs <- fmt.Errorf("%s %s from %q: status %d, want %d", k.method, k.path, k.origin, res.StatusCode, k.status)
				case k.acao == "" && len(acao) != 0, k.acao != "" && (len(acao) != 1 || acao[0] != k.acao):
					errs <- fmt.Errorf("%s %s from %q: ACAO %q, want %q", k.method, k.path, k.origin, acao, k.acao)
				case k.status == 200 && (string(body) != n || res.Header.Get("X-Request") != n):
					errs <- fmt.Errorf("request %s got the response of %q/%q", n, body, res.Header.Get("X-Request"))
				default:
					continue
				}
				return
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
