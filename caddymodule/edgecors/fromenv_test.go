package edgecors

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func patternStrings(ps []originPattern) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

func TestDeriveBindOrigins(t *testing.T) {
	family := func(port string) []string {
		return []string{
			"http://localhost" + port, "https://localhost" + port,
			"http://127.0.0.1" + port, "https://127.0.0.1" + port,
			"http://[::1]" + port, "https://[::1]" + port,
		}
	}
	for _, tc := range []struct {
		name, host, port string
		production       bool
		want             []string
	}{
		{"Flask's defaults", "", "", false, family(":5000")},
		{"wildcard bind stands for the loopback family", "0.0.0.0", "8000", false, family(":8000")},
		{"IPv6 wildcard bind", "::", "8000", false, family(":8000")},
		{"bracketed IPv6 wildcard bind", "[::]", "8000", false, family(":8000")},
		{"any 127/8 address", "127.0.0.2", "5000", false, family(":5000")},
		{"localhost", "LOCALHOST", "5000", false, family(":5000")},
		{"::1", "::1", "5000", false, family(":5000")},
		{"default ports are elided per scheme", "localhost", "80", false, []string{
			"http://localhost", "https://localhost:80", "http://127.0.0.1", "https://127.0.0.1:80", "http://[::1]", "https://[::1]:80"}},
		{"a named host is itself", "App.Example.com", "443", false, []string{"http://app.example.com:443", "https://app.example.com"}},
		{"a LAN address is itself", "192.168.1.10", "5000", false, []string{"http://192.168.1.10:5000", "https://192.168.1.10:5000"}},
		{"an IPv6 address is bracketed", "2001:DB8::1", "5000", false, []string{"http://[2001:db8::1]:5000", "https://[2001:db8::1]:5000"}},
		{"surrounding spaces are ignored", " app.example.com ", " 8443 ", false, []string{"http://app.example.com:8443", "https://app.example.com:8443"}},
		{"production derives only https", "app.example.com", "443", true, []string{"https://app.example.com"}},
		{"production derives no loopback", "127.0.0.1", "5000", true, nil},
		{"production derives nothing from a wildcard bind", "0.0.0.0", "5000", true, nil},
	} {
		got, err := deriveBindOrigins(tc.host, tc.port, tc.production)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if gs := patternStrings(got); !slices.Equal(gs, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, gs, tc.want)
		}
	}
}

func TestDeriveBindOriginsRefusesWhatIsNotAHostAndPort(t *testing.T) {
	for _, tc := range []struct{ host, port, want string }{
		{"localhost", "abc", "a port is a number from 1 to 65535"},
		{"localhost", "0", "a port is a number from 1 to 65535"},
		{"0.0.0.0:5000", "5000", "the host has a port; give the port in the port variable"},
		{"*.example.com", "5000", "not a wildcard"},
		{"app example", "5000", "malformed host"},
		{"http://app.example.com", "5000", "the host has a port"},
	} {
		_, err := deriveBindOrigins(tc.host, tc.port, false)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:%q: error %v, want it to contain %q", tc.host, tc.port, err, tc.want)
		}
	}
}

func TestPublicURLOrigin(t *testing.T) {
	for _, tc := range []struct{ in, want, wantErr string }{
		{"https://app.example.com", "https://app.example.com", ""},
		{"https://APP.example.com:443/shop/?x=1", "https://app.example.com", ""},
		{"http://app.example.com:8080/", "http://app.example.com:8080", ""},
		{"app.example.com", "", "not a URL of the form"},
		{"https://user:pw@app.example.com", "", "userinfo"},
		{"ftp://app.example.com", "", "only http and https"},
		{"https://*.example.com", "", "not a wildcard"},
	} {
		p, err := publicURLOrigin(tc.in)
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want it to contain %q", tc.in, err, tc.wantErr)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case p.String() != tc.want:
			t.Errorf("%q = %q, want %q", tc.in, p.String(), tc.want)
		}
	}
}

func TestOriginsFromEnvReadsTheNamedVariables(t *testing.T) {
	withEnv(t, map[string]string{"APP_HOST": "0.0.0.0", "APP_PORT": "8000", "PUBLIC_URL": "https://app.example.com/"})
	h := Handler{
		Origins:        []string{"https://admin.example.com"},
		OriginsFromEnv: &OriginsFromEnv{HostVar: "APP_HOST", PortVar: "APP_PORT", PublicURLVar: "PUBLIC_URL"},
	}
	if err := provisionOnly(t, &h); err != nil {
		t.Fatal(err)
	}
	want := []string{"https://admin.example.com",
		"http://localhost:8000", "https://localhost:8000", "http://127.0.0.1:8000", "https://127.0.0.1:8000",
		"http://[::1]:8000", "https://[::1]:8000", "https://app.example.com"}
	if !slices.Equal(h.Origins, want) {
		t.Errorf("Origins:\n got %q\nwant %q", h.Origins, want)
	}
	if _, ok := h.origins.allow("http://127.0.0.1:8000"); !ok {
		t.Error("a derived origin is not allowed")
	}
}

func TestOriginsFromEnvInProductionTakesThePublicURLOnly(t *testing.T) {
	withEnv(t, map[string]string{"APP_ENV": "production", "FLASK_HOST": "127.0.0.1", "FLASK_PORT": "5000", "PUBLIC_URL": "https://app.example.com"})
	h := Handler{OriginsFromEnv: &OriginsFromEnv{PublicURLVar: "PUBLIC_URL"}}
	if err := provisionOnly(t, &h); err != nil {
		t.Fatal(err)
	}
	if want := []string{"https://app.example.com"}; !slices.Equal(h.Origins, want) {
		t.Errorf("Origins = %q, want %q", h.Origins, want)
	}
}

func TestOriginsFromEnvInProductionRefusesAnHTTPPublicURL(t *testing.T) {
	withEnv(t, map[string]string{"APP_ENV": "production", "PUBLIC_URL": "http://app.example.com"})
	err := provisionOnly(t, &Handler{OriginsFromEnv: &OriginsFromEnv{PublicURLVar: "PUBLIC_URL"}})
	if err == nil || !strings.Contains(err.Error(), `refuses http origin "http://app.example.com"; serve the page over https and write "https://app.example.com"`) {
		t.Errorf("error %v", err)
	}
}

func TestOriginsFromEnvDerivingNothingSaysWhy(t *testing.T) {
	withEnv(t, map[string]string{"APP_ENV": "production", "FLASK_HOST": "0.0.0.0"})
	err := provisionOnly(t, &Handler{OriginsFromEnv: &OriginsFromEnv{}})
	if err == nil || !strings.Contains(err.Error(), "origins_from_env derived none") {
		t.Errorf("error %v", err)
	}
}

func TestOriginsFromEnvErrorsNameTheVariables(t *testing.T) {
	withEnv(t, map[string]string{"FLASK_HOST": "0.0.0.0", "FLASK_PORT": "http"})
	err := provisionOnly(t, &Handler{OriginsFromEnv: &OriginsFromEnv{}})
	if err == nil || !strings.Contains(err.Error(), `edge_cors: origins_from_env: FLASK_HOST="0.0.0.0", FLASK_PORT="http": `) {
		t.Errorf("error %v", err)
	}
}

var updateReference = flag.Bool("update-reference", false, "rewrite the origins_from_env table in docs/REFERENCE.md from TestReferenceOriginsFromEnvTable")

// docs/REFERENCE.md's table of FLASK_HOST/FLASK_PORT combinations is this
// test's output, so it cannot drift from what the code derives. After a
// change, regenerate it:
//
//	go test ./caddymodule/edgecors -run TestReferenceOriginsFromEnvTable -update-reference
func TestReferenceOriginsFromEnvTable(t *testing.T) {
	rows := []struct{ host, port, publicURL, env string }{
		{"", "", "", ""},
		{"127.0.0.1", "5000", "", ""},
		{"localhost", "8000", "", ""},
		{"::1", "5000", "", ""},
		{"0.0.0.0", "8000", "", ""},
		{"::", "8000", "", ""},
		{"192.168.1.10", "5000", "", ""},
		{"2001:db8::10", "5000", "", ""},
		{"app.example.com", "80", "", ""},
		{"app.example.com", "443", "", ""},
		{"0.0.0.0", "5000", "", "production"},
		{"127.0.0.1", "5000", "https://app.example.com", "production"},
		{"0.0.0.0", "8000", "https://app.example.com:8443/shop/", "staging"},
	}
	cell := func(s string) string {
		if s == "" {
			return "(unset)"
		}
		return "`" + s + "`"
	}
	var b strings.Builder
	b.WriteString("| `FLASK_HOST` | `FLASK_PORT` | `PUBLIC_URL` | environment | allowed origins |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		withEnv(t, map[string]string{"FLASK_HOST": r.host, "FLASK_PORT": r.port, "PUBLIC_URL": r.publicURL})
		patterns, err := (&OriginsFromEnv{PublicURLVar: "PUBLIC_URL"}).derive(r.env)
		if err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		origins := "none: name a public URL"
		if len(patterns) > 0 {
			origins = "`" + strings.Join(patternStrings(patterns), "` `") + "`"
		}
		env := r.env
		if env == "" {
			env = "—"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", cell(r.host), cell(r.port), cell(r.publicURL), env, origins)
	}
	table := b.String()

	const begin = "<!-- origins_from_env table: generated by TestReferenceOriginsFromEnvTable (caddymodule/edgecors) -->\n"
	const end = "<!-- end of origins_from_env table -->\n"
	path := filepath.Join("..", "..", "docs", "REFERENCE.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok1 := strings.Cut(string(doc), begin)
	old, after, ok2 := strings.Cut(rest, end)
	if !ok1 || !ok2 {
		t.Fatalf("docs/REFERENCE.md has no %q ... %q section", begin, end)
	}
	if old == table {
		return
	}
	if *updateReference {
		if err := os.WriteFile(path, []byte(before+begin+table+end+after), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("docs/REFERENCE.md's origins_from_env table differs from what the code derives; run\n\tgo test ./caddymodule/edgecors -run TestReferenceOriginsFromEnvTable -update-reference\nwant:\n%s", table)
}
