package identity

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/stretchr/testify/assert"
)

func TestAnIdentityIsAnonymousOnceItsCookieExpires(t *testing.T) {
	now := time.Unix(1000, 0)
	id := Identity{UserID: "7", Roles: "user,admin", Expires: now.Add(time.Second)}
	assert.Equal(t, "7", id.At(now).UserID)
	assert.True(t, id.At(now.Add(time.Second)).Anonymous())
	assert.Equal(t, "7", Identity{UserID: "7"}.At(now.Add(time.Hour)).UserID, "no expiry given")
	assert.True(t, id.HasRole([]string{"admin"}))
	assert.False(t, id.HasRole([]string{"adm"}), "roles match whole")
}

// The provider's identity wins; without one, the caddyauth placeholders
// speak; without either, the client is anonymous.
func TestOfReadsTheProviderThenThePlaceholders(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	assert.True(t, Of(r).Anonymous())

	repl := caddy.NewReplacer()
	repl.Set("http.auth.user.id", "9")
	repl.Set("http.auth.user.role", "ops")
	ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{})
	r = r.WithContext(ctx)
	assert.Equal(t, Identity{UserID: "9", Roles: "ops"}, Of(r))

	Set(r, Identity{UserID: "7", Roles: "admin"})
	assert.Equal(t, "7", Of(r).UserID)
}
