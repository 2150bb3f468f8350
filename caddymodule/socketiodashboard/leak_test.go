package socketiodashboard_test

import (
	"testing"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// The whole package, once its tests have all run, leaves no goroutine
// behind (the dashboard's streams, the proxies the tests provision).
func TestMain(m *testing.M) {
	testenv.VerifyTestMain(m)
}
