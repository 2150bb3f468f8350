package flasksession

import (
	"fmt"
	"net/http"
	"strings"
)

// IdentityHeaders names the request headers in which the edge hands the
// app the identity it verified. The edge removes every client-sent copy
// of them from each request the provider sees, anonymous or not, before
// setting them for a valid session, so the app can trust them.
type IdentityHeaders struct {
	// User carries the verified user id. Default: "X-Auth-User-Id".
	User string `json:"user,omitempty"`
	// Role carries the verified roles, joined with ",". Default:
	// "X-Auth-Role".
	Role string `json:"role,omitempty"`
	// Off disables the headers. Client copies are then passed on like
	// any other header, so the app must not trust them.
	Off bool `json:"off,omitempty"`
}

const (
	defaultUserHeader = "X-Auth-User-Id"
	defaultRoleHeader = "X-Auth-Role"
)

func (ih *IdentityHeaders) provision() error {
	if ih.User == "" {
		ih.User = defaultUserHeader
	}
	if ih.Role == "" {
		ih.Role = defaultRoleHeader
	}
	for _, h := range []string{ih.User, ih.Role} {
		if !validHeaderName(h) {
			return fmt.Errorf("flask_session: identity header %q is not a header name; write e.g. %s", h, defaultUserHeader)
		}
	}
	if wsgiName(ih.User) == wsgiName(ih.Role) {
		return fmt.Errorf("flask_session: identity headers %q and %q are the same header to a WSGI app", ih.User, ih.Role)
	}
	return nil
}

// set removes the client's copies of the identity headers and sets them
// for user and roles (nothing for an anonymous request).
//
// WSGI servers fold '-' and '_' and case into one environ key
// (X_Auth_User_Id and x-auth-user-id both become HTTP_X_AUTH_USER_ID),
// so every header that folds to an identity header's key is removed, not
// only the exact name.
func (ih *IdentityHeaders) set(h http.Header, user, roles string, valid bool) {
	if ih.Off {
		return
	}
	for name := range h {
		if sameWSGIName(name, ih.User) || sameWSGIName(name, ih.Role) {
			delete(h, name)
		}
	}
	if valid {
		h.Set(ih.User, user)
		h.Set(ih.Role, roles)
	}
}

// wsgiName is the CGI/WSGI form of a header name: upper case, '-' as '_'.
func wsgiName(name string) string {
	return strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// sameWSGIName reports whether two header names have the same WSGI form,
// without building it: it runs on every header of every request.
func sameWSGIName(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := foldWSGI(a[i]), foldWSGI(b[i])
		if x != y {
			return false
		}
	}
	return true
}

func foldWSGI(c byte) byte {
	switch {
	case c == '-':
		return '_'
	case 'a' <= c && c <= 'z':
		return c - 'a' + 'A'
	}
	return c
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
