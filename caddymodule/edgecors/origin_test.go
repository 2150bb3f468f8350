package edgecors

import (
	"strings"
	"testing"
)

func TestParseOriginPatternNormalisesSpellingsOfTheSameOrigin(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://app.example.com", "https://app.example.com"},
		{"http://localhost:5000", "http://localhost:5000"},
		{"http://LOCALHOST:5000", "http://localhost:5000"},
		{"HTTPS://App.Example.COM", "https://app.example.com"},
		{"https://a.com:443", "https://a.com"},
		{"http://a.com:80", "http://a.com"},
		{"http://a.com:443", "http://a.com:443"},
		{"https://a.com:80", "https://a.com:80"},
		{"http://localhost:05000", "http://localhost:5000"},
		{"http://127.0.0.1:5000", "http://127.0.0.1:5000"},
		{"http://[::1]:5000", "http://[::1]:5000"},
		{"http://[0:0:0:0:0:0:0:1]:5000", "http://[::1]:5000"},
		{"http://[2001:DB8::1]", "http://[2001:db8::1]"},
		{"https://*.example.com", "https://*.example.com"},
		{"https://*.Example.com:8443", "https://*.example.com:8443"},
		{"https://*.example.co.uk", "https://*.example.co.uk"},
		{"https://xn--bcher-kva.example", "https://xn--bcher-kva.example"},
		{"https://my_host.internal", "https://my_host.internal"},
		{"*", "*"},
	} {
		p, err := parseOriginPattern(tc.in)
		if err != nil {
			t.Errorf("parseOriginPattern(%q): unexpected error: %v", tc.in, err)
			continue
		}
		if got := p.String(); got != tc.want {
			t.Errorf("parseOriginPattern(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Each refusal must say what is wrong and, where there is one, what to
// write instead: the wanted substring holds that advice.
func TestParseOriginPatternRefusesWhatIsNotAnOriginAndSaysWhatToWrite(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"http://localhost:5000/", `origin "http://localhost:5000/" has a path; write it as "http://localhost:5000"`},
		{"https://a.com/app", `has a path; write it as "https://a.com"`},
		{"https://A.com:443/", `has a path; write it as "https://a.com"`},
		{"https://a.com?x=1", `has a query; write it as "https://a.com"`},
		{"https://a.com#top", `has a fragment; write it as "https://a.com"`},
		{"https://user:pw@a.com", `has userinfo, which an Origin never carries; write it as "https://a.com"`},
		{"null", `origin "null" is what sandboxed iframes`},
		{"NULL", `origin "null"`},
		{"", "empty origin"},
		{"localhost:5000", `has no scheme; write "http://localhost:5000" or "https://localhost:5000"`},
		{"app.example.com", `write "http://app.example.com" or "https://app.example.com"`},
		{"ftp://a.com", `only http and https origins are supported`},
		{"wss://a.com", `write "http://a.com" or "https://a.com"`},
		{"https://", "has no host"},
		{"https://:443", "has no host"},
		{"https://a.com:", "has an empty port"},
		{"https://a.com:0", "a port is a number from 1 to 65535"},
		{"https://a.com:65536", "a port is a number from 1 to 65535"},
		{"https://a.com:123456", "a port is a number from 1 to 65535"},
		{"https://a.com:8o", "a port is a number from 1 to 65535"},
		{"http://localhost:5000.evil.com", "a port is a number from 1 to 65535"},
		{"https://a.com.", `ends in a dot, which a browser treats as a different origin; write it as "https://a.com"`},
		{"https://*.example.com.", `write it as "https://*.example.com"`},
		{"https://a..com", "empty label"},
		{"https://.a.com", "empty label"},
		{"https://a b.com", "not allowed in a host name"},
		{"https://bücher.example", `non-ASCII host; browsers send the punycode form: write it as "https://xn--bcher-kva.example"`},
		{"http://::1", `IPv6 hosts go in brackets`},
		{"http://[::1", `unclosed "["`},
		{"http://[::1]x", "text after the IPv6 address"},
		{"http://[zz::1]", "malformed IPv6 address"},
		{"http://[127.0.0.1]", "malformed IPv6 address"},
		{"http://[fe80::1%25eth0]", "malformed IPv6 address"},
		{"http://127.1", "malformed IPv4 address"},
		{"http://127.000.0.1", "malformed IPv4 address"},
		{"https://*.com", `allows every site under the public suffix "com"`},
		{"https://*.co.uk", `public suffix "co.uk"; put the wildcard over a domain you control, as in "https://*.example.co.uk"`},
		{"https://*.github.io", `public suffix "github.io"`},
		{"https://*.localhost", `public suffix "localhost"`},
		{"https://*.0.0.1", "wildcard over an IP address"},
		{"https://*example.com", "not the whole leftmost label"},
		{"https://a.*.example.com", "not the whole leftmost label"},
		{"https://*", "not the whole leftmost label"},
		{"https://*.*.example.com", "not the whole leftmost label"},
	} {
		_, err := parseOriginPattern(tc.in)
		if err == nil {
			t.Errorf("parseOriginPattern(%q): no error, want one containing %q", tc.in, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseOriginPattern(%q) error:\n  %v\nwant it to contain:\n  %s", tc.in, err, tc.want)
		}
	}
}

func TestOriginSetMatchesOnlyListedOrigins(t *testing.T) {
	set := mustOriginSet(t, "http://localhost:5000", "https://app.example.com", "https://*.example.com", "http://[::1]:5000", "https://*.corp.example.org:8443")
	for _, tc := range []struct {
		origin string
		want   bool
	}{
		{"http://localhost:5000", true},
		{"http://LOCALHOST:5000", true}, // host comparison ignores case
		{"HTTP://localhost:5000", true},
		{"http://localhost:5001", false},
		{"https://localhost:5000", false},
		{"http://localhost", false},
		{"http://localhost:5000/", false},
		{"http://localhost:5000.evil.com", false},
		{"http://localhost.:5000", false}, // trailing dot: another origin
		{"http://127.0.0.1:5000", false},  // the loopback family is not implied
		{"http://[::1]:5000", true},
		{"https://app.example.com", true},
		{"https://app.example.com:443", false}, // browsers never send a default port
		{"https://a.example.com", true},
		{"https://a.b.example.com", true},
		{"https://A.Example.COM", true},
		{"https://example.com", false}, // the wildcard is for subdomains only
		{"https://evil-example.com", false},
		{"https://evilexample.com", false},
		{"https://example.com.evil.com", false},
		{"https://a.example.com.", false},
		{"https://.example.com", false},
		{"https://a..example.com", false},
		{"https://a/.example.com", false},
		{"https://user@a.example.com", false},
		{"https://a.example.com:8443", false},
		{"http://a.example.com", false},
		{"https://x.corp.example.org:8443", true},
		{"https://x.corp.example.org", false},
		{"null", false},
		{"", false},
		{"https://" + strings.Repeat("a", 300) + ".example.com", false},
	} {
		if _, got := set.allow(tc.origin); got != tc.want {
			t.Errorf("allow(%q) = %v, want %v", tc.origin, got, tc.want)
		}
	}
}

func TestOriginSetSharesThePrecomputedValueForCanonicalOrigins(t *testing.T) {
	set := mustOriginSet(t, "http://localhost:5000", "https://*.example.com")
	if v, ok := set.allow("http://localhost:5000"); !ok || len(v) != 1 || v[0] != "http://localhost:5000" {
		t.Errorf("canonical origin: got %q, %v", v, ok)
	}
	// Any other spelling must be echoed as sent, so the value is left to the caller.
	if v, ok := set.allow("http://LOCALHOST:5000"); !ok || v != nil {
		t.Errorf("uppercase origin: got %q, %v; want nil, true", v, ok)
	}
	if v, ok := set.allow("https://a.example.com"); !ok || v != nil {
		t.Errorf("wildcard origin: got %q, %v; want nil, true", v, ok)
	}
	anySet := mustOriginSet(t, "*")
	if v, ok := anySet.allow("https://anything.test"); !ok || v[0] != "*" {
		t.Errorf(`"*": got %q, %v`, v, ok)
	}
}

func mustOriginSet(t testing.TB, origins ...string) originSet {
	t.Helper()
	var ps []originPattern
	for _, o := range origins {
		p, err := parseOriginPattern(o)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	return newOriginSet(ps)
}

// FuzzParseOriginPattern checks that what the parser accepts is stable
// (its canonical form parses to itself) and is matched by the runtime
// set exactly as a browser would send it.
func FuzzParseOriginPattern(f *testing.F) {
	for _, s := range []string{
		"https://a.com", "http://LOCALHOST:5000", "https://*.example.com:8443", "http://[::1]:5000",
		"https://a.com:443/", "null", "*", "https://*.co.uk", "http://127.0.0.1", "https://user@a.com",
		"https://bücher.example", "http://[fe80::1%25eth0]", "https://a.com.",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseOriginPattern(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("empty error for %q", s)
			}
			return
		}
		canon := p.String()
		again, err := parseOriginPattern(canon)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canon, s, err)
		}
		if again != p {
			t.Fatalf("canonical form %q of %q parses to %+v, not %+v", canon, s, again, p)
		}
		set := newOriginSet([]originPattern{p})
		probe := canon
		if p.kind == subdomains {
			probe = strings.Replace(canon, "*", "sub", 1)
		}
		if _, ok := set.allow(probe); !ok {
			t.Fatalf("set for %q does not allow %q", canon, probe)
		}
		if p.kind != anyOrigin {
			if _, ok := set.allow(probe + "."); ok {
				t.Fatalf("set for %q allows %q", canon, probe+".")
			}
		}
	})
}

// FuzzOriginSetAllow feeds arbitrary Origin headers to the runtime
// matcher: whatever it allows must be an origin (no path, query,
// fragment or userinfo, ASCII only) that the config parser accepts.
func FuzzOriginSetAllow(f *testing.F) {
	set := mustOriginSet(f, "http://localhost:5000", "https://*.example.com", "http://[::1]:5000")
	set.anyLoopbackPort = true
	for _, s := range []string{
		"http://localhost:5000", "https://a.example.com", "https://a.example.com/", "http://localhost:5173",
		"http://LOCALHOST:5000", "https://evil-example.com", "http://localhost:5000.evil.com", "null", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, origin string) {
		if _, ok := set.allow(origin); !ok {
			return
		}
		if _, err := parseOriginPattern(origin); err != nil {
			t.Fatalf("allowed %q, which is not an origin: %v", origin, err)
		}
		if strings.ContainsAny(origin[strings.Index(origin, "://")+3:], "/?#@") {
			t.Fatalf("allowed %q, which has more than scheme://host[:port]", origin)
		}
	})
}
