package flasksession

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// spoofed adds every spelling of the identity headers a client could use
// to reach the app's HTTP_X_AUTH_USER_ID / HTTP_X_AUTH_ROLE.
func spoofed(cookie string) *http.Request {
	req := requestWithCookie(cookie)
	req.Header["X-Auth-User-Id"] = []string{"mallory"}
	req.Header["X_auth_user_id"] = []string{"mallory"}
	req.Header["x-auth-role"] = []string{"admin"}
	req.Header["X_AUTH_ROLE"] = []string{"admin"}
	return req
}

// A valid session's identity replaces whatever the client sent under any
// spelling that a WSGI app reads as the same header.
func TestIdentityHeadersReplaceClientCopies(t *testing.T) {
	v := loadVectors(t)["plain"]
	fs := provisioned(t, FlaskSession{SecretKeys: v.Keys}, v.Now)
	r := spoofed(v.Cookie)
	if _, ok, err := fs.Authenticate(httptest.NewRecorder(), r); !ok || err != nil {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
	want := map[string][]string{"X-Auth-User-Id": {v.UserID}, "X-Auth-Role": {strings.Join(v.Roles, ",")}}
	for name, vals := range r.Header {
		if k := wsgiName(name); k == "X_AUTH_USER_ID" || k == "X_AUTH_ROLE" {
			if w, ok := want[name]; !ok || len(vals) != 1 || vals[0] != w[0] {
				t.Errorf("header %s = %q reached the app", name, vals)
			}
		}
	}
	if len(r.Header["X-Auth-User-Id"]) != 1 || len(r.Header["X-Auth-Role"]) != 1 {
		t.Errorf("identity headers not set: %v", r.Header)
	}
}

// Anonymous requests, with no cookie or an invalid one, carry no identity
// header at all, whatever the client sent.
func TestIdentityHeadersAreRemovedFromAnonymousRequests(t *testing.T) {
	v := loadVectors(t)["plain"]
	fs := provisioned(t, FlaskSession{SecretKeys: v.Keys}, v.Now)
	for _, cookie := range []string{"", v.Cookie + "x"} {
		r := spoofed(cookie)
		if _, ok, _ := fs.Authenticate(httptest.NewRecorder(), r); !ok {
			t.Fatal("anonymous request refused without require")
		}
		for name := range r.Header {
			if k := wsgiName(name); k == "X_AUTH_USER_ID" || k == "X_AUTH_ROLE" {
				t.Errorf("cookie %q: client header %s reached the app", cookie, name)
			}
		}
	}
}

func TestIdentityHeadersCanBeRenamedOrTurnedOff(t *testing.T) {
	v := loadVectors(t)["plain"]
	fs := provisioned(t, FlaskSession{SecretKeys: v.Keys, IdentityHeaders: &IdentityHeaders{User: "X-User", Role: "X-Roles"}}, v.Now)
	r := requestWithCookie(v.Cookie)
	_, _, _ = fs.Authenticate(httptest.NewRecorder(), r)
	if r.Header.Get("X-User") != v.UserID || r.Header.Get("X-Auth-User-Id") != "" {
		t.Errorf("renamed headers: %v", r.Header)
	}

	fs = provisioned(t, FlaskSession{SecretKeys: v.Keys, IdentityHeaders: &IdentityHeaders{Off: true}}, v.Now)
	r = requestWithCookie(v.Cookie)
	_, _, _ = fs.Authenticate(httptest.NewRecorder(), r)
	if r.Header.Get("X-Auth-User-Id") != "" {
		t.Errorf("headers set although off: %v", r.Header)
	}
}

func TestSameWSGINameFoldsCaseAndDashes(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"X-Auth-User-Id", "X-Auth-User-Id", true},
		{"x_auth_user_id", "X-Auth-User-Id", true},
		{"X_AUTH_USER_ID", "x-auth-user-id", true},
		{"X-Auth-User-Idx", "X-Auth-User-Id", false},
		{"X-Auth-Role", "X-Auth-User-Id", false},
	} {
		if got := sameWSGIName(tc.a, tc.b); got != tc.same || (wsgiName(tc.a) == wsgiName(tc.b)) != tc.same {
			t.Errorf("%q vs %q: got %v, want %v", tc.a, tc.b, got, tc.same)
		}
	}
}
