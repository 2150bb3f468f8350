// Package identity carries who a request's verified session says the
// client is from the authentication provider (flask_session) to
// socketio_proxy, which keeps it for the life of a Socket.IO session.
//
// A request's identity lasts as long as the request; a WebSocket lasts
// for hours. So besides the user id and roles the provider hands on when
// the cookie expires and, when the roles live in the app's database, a
// way to ask again: socketio_proxy decides a live session's CONNECTs, and
// withdraws its namespaces, with roles no older than the provider's TTL.
package identity

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Identity is a verified user, or the anonymous client (UserID "").
type Identity struct {
	// UserID is the verified user id; "" for an anonymous client.
	UserID string
	// Roles are the user's roles, comma-separated.
	Roles string
	// Expires is when the session cookie passes max_age and the client
	// becomes anonymous; zero when the provider did not say.
	Expires time.Time
	// Refresh, when set, returns the user's identity as of now (within
	// the provider's cache TTL): the roles may have changed in the app's
	// database, or the app may no longer accept the session (UserID "").
	// An error means the answer is unknown, which callers treat as
	// anonymous (fail closed).
	Refresh func(ctx context.Context) (Identity, error)
}

// Anonymous reports whether no user is verified.
func (id Identity) Anonymous() bool { return id.UserID == "" }

// HasRole reports whether the identity has one of want.
func (id Identity) HasRole(want []string) bool {
	for r := range strings.SplitSeq(id.Roles, ",") {
		if r != "" && slices.Contains(want, r) {
			return true
		}
	}
	return false
}

// At is the identity at time t: anonymous once the cookie has expired.
func (id Identity) At(t time.Time) Identity {
	if !id.Expires.IsZero() && !t.Before(id.Expires) {
		return Identity{}
	}
	return id
}

// varKey is the request variable under which the provider leaves the
// identity for the handlers after it.
const varKey = "flaskedge.identity"

// Set leaves id on the request for the handlers that follow.
func Set(r *http.Request, id Identity) {
	caddyhttp.SetVar(r.Context(), varKey, &id)
}

// Of returns the identity of r: the one its provider left with Set, or,
// for any other caddyauth provider, the {http.auth.user.id} and
// {http.auth.user.role} placeholders it set (then with no expiry and no
// refresh). Anonymous when no provider ran.
func Of(r *http.Request) Identity {
	if id, ok := caddyhttp.GetVar(r.Context(), varKey).(*Identity); ok {
		return *id
	}
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return Identity{}
	}
	id, _ := repl.GetString("http.auth.user.id")
	roles, _ := repl.GetString("http.auth.user.role")
	return Identity{UserID: id, Roles: roles}
}
