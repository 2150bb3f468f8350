package edgecors

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// patternKind says what an entry of origins matches.
type patternKind uint8

const (
	exactOrigin patternKind = iota // one serialized origin
	subdomains                     // https://*.example.com: any subdomain, any depth
	anyOrigin                      // *
)

// originPattern is one entry of origins after parsing, in canonical
// form: lowercase scheme and host, default port elided, IPv6 in its
// RFC 5952 form. Canonical is what a browser puts in the Origin header,
// so an exact pattern can be matched by plain string comparison.
type originPattern struct {
	kind   patternKind
	scheme string // "http" or "https"
	host   string // for subdomains, the parent domain without "*."
	port   string // decimal, "" for the scheme's default port
}

// String returns the canonical serialization of p.
func (p originPattern) String() string {
	switch p.kind {
	case anyOrigin:
		return "*"
	case subdomains:
		return p.scheme + "://*." + p.host + portSuffix(p.port)
	}
	return p.scheme + "://" + p.host + portSuffix(p.port)
}

func portSuffix(port string) string {
	if port == "" {
		return ""
	}
	return ":" + port
}

// maxOriginLen bounds a serialized origin: "https://" + a 253-byte DNS
// name + ":65535". Anything longer in a request is not an origin a
// browser sends.
const maxOriginLen = 8 + 253 + 6

// parseOriginPattern parses one entry of the origins list. Its errors
// say what is wrong and, where there is one, the entry to write instead.
//
// Normalised silently, because each is only another spelling of the same
// origin: letter case (http://LOCALHOST:5000 → http://localhost:5000),
// default ports (https://a.com:443 → https://a.com), leading zeros in
// the port, the spelling of an IPv6 address.
//
// Refused: paths (even "/"), queries, fragments and userinfo, which an
// Origin header never carries; "null"; schemes other than http and
// https; a trailing dot (https://a.com. is a different origin to a
// browser); non-ASCII hosts (write the punycode form, which is what the
// browser sends); a wildcard anywhere but as the whole leftmost label,
// or one whose parent domain is a public suffix (https://*.com,
// https://*.co.uk, https://*.github.io).
func parseOriginPattern(s string) (originPattern, error) {
	switch {
	case s == "":
		return originPattern{}, fmt.Errorf(`empty origin; write a serialized origin such as "https://app.example.com"`)
	case s == "*":
		return originPattern{kind: anyOrigin}, nil
	case strings.EqualFold(s, "null"):
		return originPattern{}, fmt.Errorf(`origin "null" is what sandboxed iframes, file: pages and cross-origin redirects send, so allowing it allows any of them; remove it and list the real origins`)
	}

	sep := strings.Index(s, "://")
	if sep < 0 {
		if strings.ContainsAny(s, "/?#@ ") {
			return originPattern{}, fmt.Errorf(`origin %q is not of the form scheme://host[:port]`, s)
		}
		return originPattern{}, fmt.Errorf(`origin %q has no scheme; write "http://%s" or "https://%s"`, s, s, s)
	}
	scheme := strings.ToLower(s[:sep])
	rest := s[sep+3:]
	switch scheme {
	case "http", "https":
	case "ws", "wss":
		return originPattern{}, fmt.Errorf(`origin %q has scheme %q; a WebSocket's Origin is the origin of the page that opened it: write "http://%s" or "https://%s"`, s, scheme, rest, rest)
	default:
		return originPattern{}, fmt.Errorf(`origin %q has scheme %q; only http and https origins are supported`, s, s[:sep])
	}

	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		what := "a path"
		switch rest[i] {
		case '?':
			what = "a query"
		case '#':
			what = "a fragment"
		}
		base := s[:sep+3+i]
		p, err := parseOriginPattern(base)
		if err != nil {
			return originPattern{}, err
		}
		return originPattern{}, fmt.Errorf(`origin %q has %s; write it as %q`, s, what, p.String())
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		base := s[:sep+3] + rest[i+1:]
		p, err := parseOriginPattern(base)
		if err != nil {
			return originPattern{}, err
		}
		return originPattern{}, fmt.Errorf(`origin %q has userinfo, which an Origin never carries; write it as %q`, s, p.String())
	}

	host, port, err := splitHostPort(s, rest)
	if err != nil {
		return originPattern{}, err
	}
	p := originPattern{kind: exactOrigin, scheme: scheme, port: port}
	if port == defaultPort(scheme) {
		p.port = ""
	}

	if strings.HasPrefix(host, "[") {
		addr, err := netip.ParseAddr(host[1 : len(host)-1])
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			return originPattern{}, fmt.Errorf(`origin %q has a malformed IPv6 address; write it as in "http://[::1]:5000"`, s)
		}
		p.host = "[" + addr.String() + "]"
		return p, nil
	}

	host = strings.ToLower(host)
	if strings.HasPrefix(host, "*.") {
		p.kind = subdomains
		host = host[2:]
	}
	if strings.Contains(host, "*") {
		return originPattern{}, fmt.Errorf(`origin %q has a wildcard that is not the whole leftmost label; write subdomain wildcards as in "https://*.example.com"`, s)
	}
	if strings.HasSuffix(host, ".") && host != "." {
		canon := p
		canon.host = strings.TrimRight(host, ".")
		return originPattern{}, fmt.Errorf(`origin %q ends in a dot, which a browser treats as a different origin; write it as %q`, s, canon.String())
	}
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 {
			if ascii, err := idna.Lookup.ToASCII(host); err == nil {
				canon := p
				canon.host = ascii
				return originPattern{}, fmt.Errorf(`origin %q has a non-ASCII host; browsers send the punycode form: write it as %q`, s, canon.String())
			}
			return originPattern{}, fmt.Errorf(`origin %q has a non-ASCII host that is not a valid internationalized domain name`, s)
		}
	}
	if err := checkDomain(host); err != nil {
		return originPattern{}, fmt.Errorf(`origin %q has a malformed host: %v`, s, err)
	}
	if isIPv4Like(host) {
		if p.kind == subdomains {
			return originPattern{}, fmt.Errorf(`origin %q puts a wildcard over an IP address; list the origins one by one`, s)
		}
		if addr, err := netip.ParseAddr(host); err != nil || !addr.Is4() {
			return originPattern{}, fmt.Errorf(`origin %q has a malformed IPv4 address; write four decimal numbers without leading zeros, as in "http://127.0.0.1:5000"`, s)
		}
	}
	p.host = host
	if p.kind == subdomains {
		if ps, _ := publicsuffix.PublicSuffix(host); ps == host {
			return originPattern{}, fmt.Errorf(`origin %q allows every site under the public suffix %q; put the wildcard over a domain you control, as in "%s://*.example.%s"`, s, host, scheme, host)
		}
	}
	return p, nil
}

// splitHostPort splits the authority of origin s (rest) into host and
// a canonical decimal port ("" when absent). An IPv6 host keeps its
// brackets.
func splitHostPort(s, rest string) (host, port string, err error) {
	hostPart, portPart, hasPort := rest, "", false
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return "", "", fmt.Errorf(`origin %q has an unclosed "["; write IPv6 hosts as in "http://[::1]:5000"`, s)
		}
		hostPart = rest[:end+1]
		switch after := rest[end+1:]; {
		case after == "":
		case after[0] == ':':
			portPart, hasPort = after[1:], true
		default:
			return "", "", fmt.Errorf(`origin %q has text after the IPv6 address; write it as in "http://[::1]:5000"`, s)
		}
	} else if i := strings.IndexByte(rest, ':'); i >= 0 {
		if strings.IndexByte(rest[i+1:], ':') >= 0 {
			return "", "", fmt.Errorf(`origin %q has more than one ":"; IPv6 hosts go in brackets, as in "http://[::1]:5000"`, s)
		}
		hostPart, portPart, hasPort = rest[:i], rest[i+1:], true
	}
	if hostPart == "" || hostPart == "[]" {
		return "", "", fmt.Errorf(`origin %q has no host; write it as in "https://app.example.com"`, s)
	}
	if !hasPort {
		return hostPart, "", nil
	}
	if portPart == "" {
		return "", "", fmt.Errorf(`origin %q has an empty port; write it without the ":"`, s)
	}
	n := 0
	for i := 0; i < len(portPart); i++ {
		c := portPart[i]
		if c < '0' || c > '9' || i >= 5 {
			return "", "", fmt.Errorf(`origin %q has port %q; a port is a number from 1 to 65535`, s, portPart)
		}
		n = n*10 + int(c-'0')
	}
	if n < 1 || n > 65535 {
		return "", "", fmt.Errorf(`origin %q has port %q; a port is a number from 1 to 65535`, s, portPart)
	}
	return hostPart, strconv.Itoa(n), nil
}

func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}

// checkDomain checks a lowercase ASCII host name: dot-separated labels
// of letters, digits, '-' and '_' (browsers accept underscores), none
// empty or longer than 63 bytes, 253 bytes in all.
func checkDomain(host string) error {
	if len(host) > 253 {
		return fmt.Errorf("longer than 253 bytes")
	}
	label := 0
	for i := 0; i <= len(host); i++ {
		if i == len(host) || host[i] == '.' {
			if label == 0 {
				return fmt.Errorf("empty label")
			}
			label = 0
			continue
		}
		if !isLabelByte(host[i]) {
			return fmt.Errorf("character %q is not allowed in a host name", host[i])
		}
		if label++; label > 63 {
			return fmt.Errorf("label longer than 63 bytes")
		}
	}
	return nil
}

func isLabelByte(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// isIPv4Like reports whether a browser would parse host as an IPv4
// address: its last label is all digits.
func isIPv4Like(host string) bool {
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	for i := 0; i < len(last); i++ {
		if last[i] < '0' || last[i] > '9' {
			return false
		}
	}
	return true
}
