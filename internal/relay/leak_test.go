package relay

import (
	"testing"

	"go.uber.org/goleak"
)

// The goroutine relay runs two goroutines per connection, the event
// engine a poller goroutine while it has connections; a test that ends
// with one still running means a relay that does not stop when its
// connections close, which at tens of thousands of connections is the
// edge's memory.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
