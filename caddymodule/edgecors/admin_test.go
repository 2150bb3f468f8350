package edgecors

import (
	"testing"
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
