package edgecors

import "strings"

// originSet decides whether a request's Origin is allowed. It is built
// once at Provision and only read afterwards, so requests share it
// without locks.
//
// A browser always sends the canonical serialization (lowercase, no
// default port), so the common case is one map lookup on the header as
// it came. Letter case is still ignored, at no allocation, for clients
// that send uppercase; a default port or a trailing dot in a request's
// Origin is not a browser's spelling and does not match.
type originSet struct {
	any             bool
	anyLoopbackPort bool                // any_loopback_port: http(s)://{localhost,127.0.0.1,[::1]}[:port]
	exact           map[string][]string // canonical origin → its ACAO value, shared by all responses
	wildcards       []wildcard
}

// wildcard is a compiled subdomains pattern: "https://*.example.com:8443"
// matches prefix + one or more labels + tail.
type wildcard struct {
	prefix string // "https://"
	tail   string // ".example.com:8443"
}

var anyOriginValue = []string{"*"}

func newOriginSet(patterns []originPattern) originSet {
	s := originSet{exact: make(map[string][]string)}
	for _, p := range patterns {
		switch p.kind {
		case anyOrigin:
			s.any = true
		case subdomains:
			s.wildcards = append(s.wildcards, wildcard{
				prefix: p.scheme + "://",
				tail:   "." + p.host + portSuffix(p.port),
			})
		default:
			o := p.String()
			s.exact[o] = []string{o}
		}
	}
	return s
}

// allow reports whether origin may read responses. value is the
// Access-Control-Allow-Origin value to set when one is precomputed
// (the origin is listed and came in canonical form, or the list is
// "*"); when it is nil and ok is true the caller echoes origin itself.
func (s *originSet) allow(origin string) (value []string, ok bool) {
	if s.any {
		return anyOriginValue, true
	}
	if v, ok := s.exact[origin]; ok {
		return v, true
	}
	if len(origin) > maxOriginLen {
		return nil, false
	}
	upper := hasUpper(origin)
	if upper {
		var buf [maxOriginLen]byte
		n := copy(buf[:], origin)
		for i := range n {
			if c := buf[i]; 'A' <= c && c <= 'Z' {
				buf[i] = c + ('a' - 'A')
			}
		}
		// The compiler does not allocate for a map index by string(bytes).
		if _, ok := s.exact[string(buf[:n])]; ok {
			return nil, true
		}
	}
	for _, w := range s.wildcards {
		if w.match(origin, upper) {
			return nil, true
		}
	}
	return nil, s.anyLoopbackPort && isLoopbackOrigin(origin)
}

var loopbackOriginPrefixes = []string{
	"http://localhost", "https://localhost",
	"http://127.0.0.1", "https://127.0.0.1",
	"http://[::1]", "https://[::1]",
}

// isLoopbackOrigin reports whether origin is one of the loopback
// family's, on any port, in a browser's spelling (no leading zeros).
func isLoopbackOrigin(origin string) bool {
	for _, p := range loopbackOriginPrefixes {
		if len(origin) < len(p) || !strings.EqualFold(origin[:len(p)], p) {
			continue
		}
		port := origin[len(p):]
		if port == "" {
			return true
		}
		if port[0] != ':' || len(port) < 2 || len(port) > 6 || port[1] == '0' {
			return false
		}
		n := 0
		for i := 1; i < len(port); i++ {
			if port[i] < '0' || port[i] > '9' {
				return false
			}
			n = n*10 + int(port[i]-'0')
		}
		return n <= 65535
	}
	return false
}

// match reports whether origin is one of w's; upper says whether origin
// has uppercase letters, which only then need a case-folding compare.
func (w wildcard) match(origin string, upper bool) bool {
	if len(origin) <= len(w.prefix)+len(w.tail) {
		return false
	}
	head, tail := origin[:len(w.prefix)], origin[len(origin)-len(w.tail):]
	if upper && (!strings.EqualFold(head, w.prefix) || !strings.EqualFold(tail, w.tail)) ||
		!upper && (head != w.prefix || tail != w.tail) {
		return false
	}
	return isSubdomainLabels(origin[len(w.prefix) : len(origin)-len(w.tail)])
}

// isSubdomainLabels reports whether s is one or more non-empty
// dot-separated host-name labels (either letter case).
func isSubdomainLabels(s string) bool {
	label := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if label == 0 || label > 63 {
				return false
			}
			label = 0
			continue
		}
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if !isLabelByte(c) {
			return false
		}
		label++
	}
	return true
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}
