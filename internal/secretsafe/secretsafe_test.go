package secretsafe

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnknownSubdirectiveAfterASecretIsNotQuoted(t *testing.T) {
	d := caddyfile.NewTestDispenser("batterystaple99")
	d.Next()
	err := UnknownSubdirective(d, "sticky_secret", "socketio_proxy", []string{"to"})
	if strings.Contains(err.Error(), "batterystaple99") {
		t.Fatalf("quoted: %v", err)
	}
	err = UnknownSubdirective(d, "to", "socketio_proxy", []string{"to"})
	if !strings.Contains(err.Error(), `"batterystaple99"`) {
		t.Fatalf("a misspelled subdirective is named: %v", err)
	}
}
