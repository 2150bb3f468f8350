package identity

import (
	"testing"

	"go.uber.org/goleak"
)

// The run fails if a goroutine a test started is still running once the
// package's tests are over.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
