package flaskcookie

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzVerify: no input panics, and whatever is accepted is canonical:
// each base64 part re-encodes to itself and the signature is 20 bytes.
func FuzzVerify(f *testing.F) {
	for _, v := range loadVectors(f).Vectors {
		f.Add(v.Cookie)
	}
	f.Add(sign([]byte(`{"_user_id":"1"}`), tsBytes(testNow), testKey, true))
	f.Add(sign([]byte(`{"_user_id":"1"}`), tsBytes(testNow), testKey, false))
	verifiers := []*Verifier{
		newTestVerifier(f, Options{MaxAge: 100 * 365 * 24 * time.Hour}),
		newTestVerifier(f, Options{SecretKeys: [][]byte{[]byte("current-secret-key-for-tests-only")}, MaxAge: 100 * 365 * 24 * time.Hour}),
	}
	f.Fuzz(func(t *testing.T, cookie string) {
		for _, v := range verifiers {
			payload, err := v.Verify(cookie, time.Unix(testNow+60, 0))
			if err != nil {
				if Reason(err) == "" {
					t.Fatalf("refusal without a reason: %v", err)
				}
				continue
			}
			parts := strings.Split(strings.TrimPrefix(cookie, "."), ".")
			if len(parts) != 3 {
				t.Fatalf("accepted %d parts", len(parts))
			}
			for _, p := range parts {
				b, err := base64.RawURLEncoding.DecodeString(p)
				if err != nil || base64.RawURLEncoding.EncodeToString(b) != p {
					t.Fatalf("accepted non-canonical base64 %q", p)
				}
			}
			if len(payload) > DefaultMaxPayloadLen {
				t.Fatalf("payload of %d bytes", len(payload))
			}
			_, _ = Decode(payload, "_user_id", "role")
		}
	})
}

// FuzzDecode: no input panics, and the JSON reader agrees with
// encoding/json except for what Python adds (NaN, Infinity) and the
// depth limit.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"_user_id":"42","role":["a","b"]}`, `{"_user_id":{" u":"12345678123456781234567812345678"}}`,
		`{" di":{"_user_id__":"9"}}`, `{"role":{" t":["x",{" m":"y"}]}}`, `{"a":NaN}`, `[1,2.5e-3,"\u00e9"]`,
		`{"a":-Infinity}`, `{"_user_id":-0}`, `{"\u005fuser_id":"7"}`,
		`{"_user_id":"7\r\nX-Auth-Role: admin"}`, `{"_user_id":" 7"}`, `{"role":["user","ops,admin"]}`, `{"role":"a\u0000"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b, "_user_id", "role")
		if err == nil {
			if !utf8.ValidString(c.UserID) {
				t.Fatalf("user id not UTF-8")
			}
			// What the app reads back from the identity headers is
			// what the edge decided on.
			user, roles := headerRoundTrip(t, c.UserID, strings.Join(c.Roles, ","))
			if user != c.UserID {
				t.Fatalf("user id %q reaches the app as %q", c.UserID, user)
			}
			if got := strings.Split(roles, ","); len(c.Roles) > 0 && !slices.Equal(got, c.Roles) {
				t.Fatalf("roles %q reach the app as %q", c.Roles, got)
			}
		} else if Reason(err) != "malformed" {
			t.Fatalf("unexpected reason: %v", err)
		}

		if !utf8.Valid(b) {
			return
		}
		p := parser{b: b}
		perr := p.value(0)
		if perr == nil {
			p.ws()
			if p.i != len(b) {
				perr = errJSON
			}
		}
		std := json.Valid(b)
		switch {
		case std && perr != nil && perr != errTooDeep:
			t.Fatalf("encoding/json accepts, parser refuses: %v", perr)
		case !std && perr == nil && !strings.Contains(string(b), "NaN") && !strings.Contains(string(b), "Infinity"):
			t.Fatalf("parser accepts what encoding/json refuses")
		}
	})
}

// headerRoundTrip writes the identity headers as the edge's request to
// a worker does (http.Header.Write), reads them back as a server does,
// and strips the values as eventlet's WSGI server does.
func headerRoundTrip(t *testing.T, user, roles string) (string, string) {
	t.Helper()
	var b strings.Builder
	h := http.Header{"X-Auth-User-Id": {user}, "X-Auth-Role": {roles}}
	if err := h.Write(&b); err != nil {
		t.Fatal(err)
	}
	b.WriteString("\r\n")
	got, err := textproto.NewReader(bufio.NewReader(strings.NewReader(b.String()))).ReadMIMEHeader()
	if err != nil {
		t.Fatalf("identity headers %q do not parse back: %v", b.String(), err)
	}
	wsgi := func(v []string) string {
		if len(v) != 1 {
			t.Fatalf("identity header read back as %d values: %q", len(v), b.String())
		}
		return strings.Trim(v[0], " \t\r\n")
	}
	return wsgi(got["X-Auth-User-Id"]), wsgi(got["X-Auth-Role"])
}
