package flasksession

import (
	"context"
	"net/http"
	"time"

	"github.com/flaskedge/flaskedge/internal/flaskcookie"
	"github.com/flaskedge/flaskedge/internal/identity"
	"github.com/flaskedge/flaskedge/internal/security"
)

// leaveIdentity hands the verified identity of r to the handlers after
// the authentication handler (socketio_proxy), with what a session that
// outlives the request needs: when the cookie passes max_age, and with
// whoami, a way to ask the app again for the user's roles.
func (fs *FlaskSession) leaveIdentity(r *http.Request, value, userID, roles string) {
	id := identity.Identity{UserID: userID, Roles: roles}
	if userID == "" {
		identity.Set(r, id)
		return
	}
	if signed, ok := flaskcookie.SignedAt(value); ok {
		// itsdangerous accepts an age of max_age whole seconds, not one
		// more.
		id.Expires = signed.Add(time.Duration(fs.MaxAge).Truncate(time.Second) + time.Second)
	}
	if fs.whoami != nil {
		id.Refresh = fs.refresher(security.ClientOf(r), value, userID, id.Expires)
	}
	identity.Set(r, id)
}

// refresher asks whoami (through its cache) for the current roles of the
// session cookie value, verified as user userID.
func (fs *FlaskSession) refresher(client security.Client, value, userID string, expires time.Time) func(context.Context) (identity.Identity, error) {
	lookup := fs.whoami
	return func(ctx context.Context) (identity.Identity, error) {
		a, err := lookup.lookupFor(ctx, client, value, userID)
		if err != nil {
			return identity.Identity{}, err
		}
		if a.refused {
			return identity.Identity{}, nil
		}
		return identity.Identity{UserID: userID, Roles: a.metadata["role"], Expires: expires}, nil
	}
}
