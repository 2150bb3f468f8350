package relay

import (
	"testing"

	"go.uber.org/goleak"
)

// Every relay runs two goroutines per connection; a test that ends with
// one still running means a relay that does not stop when its
// connections close, which at tens of thousands of connections is the
// edge's memory.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
