package socketio

import (
	"testing"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// The differential test runs python-socketio's decoder in a child
// process; this checks that no goroutine (a pipe copier, a Wait) is
// left running once the package's tests are over.
func TestMain(m *testing.M) {
	testenv.VerifyTestMain(m)
}
