package flasksocketio

import (
	"testing"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/flaskedge/flaskedge/caddymodule/upstreamfile"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// TestCaddyfileAdaptsToGoldenJSON checks the golden files in testdata/.
func TestCaddyfileAdaptsToGoldenJSON(t *testing.T) { testenv.AdaptGolden(t) }
