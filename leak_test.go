package flaskedge_test

import (
	"testing"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// Each integration test is checked for goroutines it leaves behind as it
// ends (testenv.VerifyNoLeaks, registered by the testenv helpers); this
// checks the whole package, unit tests included, once they have all run.
func TestMain(m *testing.M) {
	testenv.VerifyTestMain(m)
}
