package flaskcookie

import (
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"
)

// vectorFile is what testdata/flask_cookies/gen.py writes with real Flask.
type vectorFile struct {
	UserKey string   `json:"user_key"`
	RoleKey string   `json:"role_key"`
	Vectors []vector `json:"vectors"`
}

type vector struct {
	Name         string   `json:"name"`
	Cookie       string   `json:"cookie"`
	Keys         []string `json:"keys"`
	SignedAt     int64    `json:"signed_at"`
	Now          int64    `json:"now"`
	MaxAge       int64    `json:"max_age"`
	Expect       string   `json:"expect"`
	FlaskAccepts bool     `json:"flask_accepts"`
	UserID       string   `json:"user_id"`
	Roles        []string `json:"roles"`
	Note         string   `json:"note"`
}

func loadVectors(t testing.TB) vectorFile {
	t.Helper()
	raw, err := os.ReadFile("../../testdata/flask_cookies/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var f vectorFile
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	return f
}

func vectorByName(t testing.TB, name string) vector {
	t.Helper()
	for _, v := range loadVectors(t).Vectors {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no vector %q", name)
	return vector{}
}

func (v vector) verifier(t testing.TB) *Verifier {
	t.Helper()
	keys := make([][]byte, len(v.Keys))
	for i, k := range v.Keys {
		keys[i] = []byte(k)
	}
	ver, err := NewVerifier(Options{SecretKeys: keys, MaxAge: time.Duration(v.MaxAge) * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return ver
}

// TestFlaskVectorsReachTheExpectedVerdict checks every cookie Flask made
// against the verdict gen.py recorded, at the recorded "now".
func TestFlaskVectorsReachTheExpectedVerdict(t *testing.T) {
	f := loadVectors(t)
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			payload, err := v.verifier(t).Verify(v.Cookie, time.Unix(v.Now, 0))
			var c Claims
			if err == nil {
				c, err = Decode(payload, f.UserKey, f.RoleKey)
			}
			if v.Expect == "valid" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				if c.UserID != v.UserID {
					t.Errorf("user id %q, want %q", c.UserID, v.UserID)
				}
				if len(c.Roles) != len(v.Roles) {
					t.Fatalf("roles %q, want %q", c.Roles, v.Roles)
				}
				for i := range c.Roles {
					if c.Roles[i] != v.Roles[i] {
						t.Errorf("roles %q, want %q", c.Roles, v.Roles)
					}
				}
				return
			}
			if got := Reason(err); got != v.Expect {
				t.Fatalf("reason %q (%v), want %q", got, err, v.Expect)
			}
			if v.FlaskAccepts && v.Note == "" {
				t.Errorf("Flask accepts this cookie but the edge refuses it, with no note saying why")
			}
		})
	}
}

func TestErrorsNeverQuoteTheCookie(t *testing.T) {
	f := loadVectors(t)
	for _, v := range f.Vectors {
		_, err := v.verifier(t).Verify(v.Cookie, time.Unix(v.Now, 0))
		if err == nil || len(v.Cookie) < 8 {
			continue
		}
		for _, part := range []string{v.Cookie[:8], v.Cookie[len(v.Cookie)-8:]} {
			if contains(err.Error(), part) {
				t.Errorf("%s: error %q quotes the cookie", v.Name, err)
			}
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestEveryRefusalWrapsOneSentinel(t *testing.T) {
	f := loadVectors(t)
	for _, v := range f.Vectors {
		_, err := v.verifier(t).Verify(v.Cookie, time.Unix(v.Now, 0))
		if err == nil {
			continue
		}
		var e *Error
		if !errors.As(err, &e) || Reason(err) == "" {
			t.Errorf("%s: %v is not a *Error with a reason", v.Name, err)
		}
	}
}
