// Package secretsafe words the Caddyfile errors that could quote a
// secret. A secret given as {$VAR} is substituted before the Caddyfile is
// tokenized, so a value holding a line break becomes a secret subdirective
// and, on the next line, what looks like an unknown subdirective: its
// error must not quote that token.
package secretsafe

import (
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// Secrets are the subdirectives whose arguments are secrets.
var Secrets = []string{"sticky_secret", "secret_key"}

// UnknownSubdirective is the error for the subdirective d is on, which
// the directive does not know; prev is the subdirective before it in the
// block. The token is quoted unless it follows a secret's line.
func UnknownSubdirective(d *caddyfile.Dispenser, prev, directive string, known []string) error {
	if slices.Contains(Secrets, prev) {
		return d.Errf("%s: unknown subdirective on the line after %s (not shown: it may be part of the secret, split by a line break in its {$VAR}; use {env.VAR} or quote it); %s takes %s",
			directive, prev, directive, strings.Join(known, ", "))
	}
	return d.Errf("%s: unknown subdirective %q; %s takes %s", directive, d.Val(), directive, strings.Join(known, ", "))
}
