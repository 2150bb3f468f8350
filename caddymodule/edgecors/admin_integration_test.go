package edgecors_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// The edge's admin endpoint shows what its edge_cors allows, and why, at
// the URL the documentation gives.
func TestAdminAPIShowsTheAllowedOrigins(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	edge := testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%s {
	bind 127.0.0.1
	edge_cors https://app.example.com {
		credentials
	}
	respond "app"
}
`, addr)), addr)

	res, err := http.Get("http://" + edge.AdminAddr + "/socketio/origins")
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	var origins []struct {
		Environment string `json:"environment"`
		Credentials bool   `json:"credentials"`
		Sources     []struct {
			Source  string   `json:"source"`
			Origins []string `json:"origins"`
		} `json:"sources"`
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&origins))
	require.Len(t, origins, 1)
	assert.True(t, origins[0].Credentials)
	require.Len(t, origins[0].Sources, 1)
	assert.Equal(t, "origins", origins[0].Sources[0].Source)
	assert.Equal(t, []string{"https://app.example.com"}, origins[0].Sources[0].Origins)
}
