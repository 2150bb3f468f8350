package edgecors

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// OriginsFromEnv names the environment variables from which edge_cors
// derives, at Provision, the origins of the Flask app's own pages, so
// the list follows the app's settings instead of being copied by hand.
//
// From the bind host and port it derives http and https origins (https
// only in production). A loopback host (localhost, 127.0.0.0/8, ::1) or
// a wildcard bind (0.0.0.0, ::) stands for the loopback family
// localhost, 127.0.0.1 and [::1], since a browser on the machine may
// use any of them; a wildcard bind is never itself an origin. In
// production the loopback family is not derived at all: the public
// origin comes from the public URL variable, or from origins.
type OriginsFromEnv struct {
	// The variable holding the host Flask binds to. Default FLASK_HOST;
	// when it is unset, Flask's default 127.0.0.1.
	HostVar string `json:"host_var,omitempty"`

	// The variable holding Flask's port. Default FLASK_PORT; when it is
	// unset, Flask's default 5000. Default ports are elided.
	PortVar string `json:"port_var,omitempty"`

	// Optional: the variable holding the URL the public reaches the app
	// at, as in https://app.example.com/shop/; its origin is added. Not
	// read when empty.
	PublicURLVar string `json:"public_url_var,omitempty"`
}

// Flask's own defaults, used when the variables are unset.
const (
	defaultHostVar = "FLASK_HOST"
	defaultPortVar = "FLASK_PORT"
	flaskHost      = "127.0.0.1"
	flaskPort      = "5000"
)

var loopbackFamily = []string{"localhost", "127.0.0.1", "[::1]"}

// derive reads the variables through lookupEnv and returns the origins.
func (o *OriginsFromEnv) derive(env string) ([]originPattern, error) {
	hostVar, portVar := o.HostVar, o.PortVar
	if hostVar == "" {
		hostVar = defaultHostVar
	}
	if portVar == "" {
		portVar = defaultPortVar
	}
	host, _ := lookupEnv(hostVar)
	port, _ := lookupEnv(portVar)
	patterns, err := deriveBindOrigins(host, port, env == production)
	if err != nil {
		return nil, fmt.Errorf("origins_from_env: %s=%q, %s=%q: %w", hostVar, host, portVar, port, err)
	}
	if o.PublicURLVar != "" {
		if raw, ok := lookupEnv(o.PublicURLVar); ok && strings.TrimSpace(raw) != "" {
			p, err := publicURLOrigin(strings.TrimSpace(raw))
			if err != nil {
				return nil, fmt.Errorf("origins_from_env: %s=%q: %w", o.PublicURLVar, raw, err)
			}
			patterns = append(patterns, p)
		}
	}
	return patterns, nil
}

// deriveBindOrigins returns the origins a browser uses to reach an app
// bound to host:port (empty: Flask's defaults).
func deriveBindOrigins(host, port string, httpsOnly bool) ([]originPattern, error) {
	host, port = strings.TrimSpace(host), strings.TrimSpace(port)
	if host == "" {
		host = flaskHost
	}
	if port == "" {
		port = flaskPort
	}
	hosts := []string{strings.ToLower(host)}
	local := false
	if addr, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		switch {
		case addr.IsUnspecified() || addr.IsLoopback():
			local = true
		case addr.Is6():
			hosts = []string{"[" + addr.String() + "]"}
		}
	} else if strings.Contains(host, ":") {
		return nil, fmt.Errorf("the host has a port; give the port in the port variable")
	} else {
		local = isLoopbackHost(hosts[0])
	}
	if local {
		if httpsOnly {
			return nil, nil // production: loopback is never a public origin
		}
		hosts = loopbackFamily
	}

	schemes := []string{"http", "https"}
	if httpsOnly {
		schemes = schemes[1:]
	}
	var out []originPattern
	for _, h := range hosts {
		for _, s := range schemes {
			p, err := parseOriginPattern(s + "://" + h + ":" + port)
			if err != nil {
				return nil, err
			}
			if p.kind != exactOrigin {
				return nil, fmt.Errorf("a bind host is one host, not a wildcard")
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// publicURLOrigin returns the origin of the URL the public uses; unlike
// an entry of origins it may have a path, which is dropped.
func publicURLOrigin(raw string) (originPattern, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return originPattern{}, fmt.Errorf(`not a URL of the form https://host[:port][/path]`)
	}
	if u.User != nil {
		return originPattern{}, fmt.Errorf(`the public URL has userinfo; remove it`)
	}
	p, err := parseOriginPattern(u.Scheme + "://" + u.Host)
	if err != nil {
		return originPattern{}, err
	}
	if p.kind != exactOrigin {
		return originPattern{}, fmt.Errorf("a public URL names one host, not a wildcard")
	}
	return p, nil
}

// checkNames says which of the variable names is not one, as when
// "$FLASK_HOST" is written for FLASK_HOST.
func (o *OriginsFromEnv) checkNames() []error {
	var errs []error
	for _, name := range []string{o.HostVar, o.PortVar, o.PublicURLVar} {
		if name != "" && !isEnvVarName(name) {
			errs = append(errs, fmt.Errorf(`origins_from_env: %q is not an environment variable name; write the name alone, as in "FLASK_HOST", not "$FLASK_HOST" or "{$FLASK_HOST}"`, name))
		}
	}
	return errs
}

func isEnvVarName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '_' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}
