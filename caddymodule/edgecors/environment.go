package edgecors

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// The deployment stages, which decide how strict the origin list is.
const (
	development = "development"
	staging     = "staging"
	production  = "production"
)

// Where the environment comes from when the config does not say,
// in order. FLASK_ENV is deprecated in Flask 2.2 but still set by many
// deployments.
var environmentVars = []string{"APP_ENV", "FLASK_ENV"}

// lookupEnv is os.LookupEnv, a variable so tests can give Provision an
// environment without touching the process's.
var lookupEnv = os.LookupEnv

// resolveEnvironment returns the configured environment, else the first
// of environmentVars that is set, lowercased, with where it came from.
func resolveEnvironment(configured string) (env, source string) {
	if configured != "" {
		return configured, "environment"
	}
	for _, v := range environmentVars {
		if val, ok := lookupEnv(v); ok && strings.TrimSpace(val) != "" {
			return strings.ToLower(strings.TrimSpace(val)), v
		}
	}
	return "", ""
}

func checkEnvironment(env, source string) error {
	switch env {
	case "", development, staging, production:
		return nil
	}
	return fmt.Errorf(`environment %q (from %s) is not one of development, staging, production`, env, source)
}

// checkProductionOrigin refuses what has no place in production's list:
// "*", plain http, and loopback hosts, which name the visitor's own
// machine, not the site.
func checkProductionOrigin(p originPattern) error {
	switch {
	case p.kind == anyOrigin:
		return fmt.Errorf(`environment production refuses origin "*"; list the https origins your pages are served from`)
	case p.scheme == "http":
		https := p
		https.scheme = "https"
		return fmt.Errorf(`environment production refuses http origin %q; serve the page over https and write %q`, p.String(), https.String())
	case isLoopbackHost(p.host):
		return fmt.Errorf(`environment production refuses loopback origin %q: it names the visitor's own machine, not your site; remove it`, p.String())
	}
	return nil
}

// isLoopbackHost reports whether a canonical origin host names the
// local machine: localhost and its subdomains (browsers resolve them to
// loopback), 127.0.0.0/8 and [::1].
func isLoopbackHost(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	addr, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && addr.IsLoopback()
}
