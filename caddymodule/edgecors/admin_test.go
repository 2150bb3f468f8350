package edgecors

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// The admin API lists what each live handler allows, by source, until
// its config is cleaned up.
func TestEffectiveOriginsFollowTheLiveHandlers(t *testing.T) {
	h, _ := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}, Credentials: true})
	var found bool
	for _, set := range EffectiveOrigins() {
		for _, src := range set.Sources {
			if src.Source == "origins" && len(src.Origins) == 1 && src.Origins[0] == "https://app.example.com" && set.Credentials {
				found = true
			}
		}
	}
	if !found {
		t.Fatalf("the handler's origins are not listed: %+v", EffectiveOrigins())
	}
	_ = h.Cleanup()
	for _, set := range EffectiveOrigins() {
		for _, src := range set.Sources {
			for _, o := range src.Origins {
				if o == "https://app.example.com" {
					t.Fatalf("cleaned-up handler still listed: %+v", set)
				}
			}
		}
	}
}

// GET /socketio/origins on the admin endpoint answers the live handlers'
// origin sets as JSON; other methods are refused.
func TestAdminRouteServesTheOriginSets(t *testing.T) {
	h, _ := newTestHandler(t, &Handler{Origins: []string{"https://admin-route.example.com"}})
	defer h.Cleanup()
	routes := adminAPI{}.Routes()
	if len(routes) != 1 || routes[0].Pattern != "/socketio/origins" {
		t.Fatalf("routes %+v; want /socketio/origins", routes)
	}
	w := httptest.NewRecorder()
	if err := routes[0].Handler.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/socketio/origins", nil)); err != nil {
		t.Fatal(err)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var sets []OriginSet
	if err := json.Unmarshal(w.Body.Bytes(), &sets); err != nil {
		t.Fatalf("%v: %s", err, w.Body)
	}
	found := false
	for _, set := range sets {
		for _, src := range set.Sources {
			found = found || src.Source == "origins" && slices.Equal(src.Origins, []string{"https://admin-route.example.com"}) && !set.Credentials
		}
	}
	if !found {
		t.Errorf("the handler's origins are not in %s", w.Body)
	}

	err := routes[0].Handler.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/socketio/origins", nil))
	var apiErr caddy.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatus != http.StatusMethodNotAllowed {
		t.Errorf("POST: %v; want a 405 API error", err)
	}
}
