package flaskedge_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// Through the edge, the Flask app sees the identity flask_session
// verified, and never a copy the client sent, under any spelling WSGI
// folds into the same environ key; anonymous requests carry none.
func TestBackendSeesOnlyTheVerifiedIdentity(t *testing.T) {
	worker := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1", SecretKey: "identity-secret"})
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	flask_session {
		secret_key identity-secret
	}
	reverse_proxy %[2]s
}
`, addr, worker.Addr)), addr)
	user := testenv.Login(t, worker.URL(), "uma", "user")

	type seen struct {
		UserID  *string           `json:"user_id"`
		Role    *string           `json:"role"`
		Environ map[string]string `json:"environ"`
	}
	ask := func(cookie string) seen {
		req, err := http.NewRequest("GET", "http://"+addr+"/api/edge-identity", nil)
		require.NoError(t, err)
		req.Header["X-Auth-User-Id"] = []string{"mallory"}
		req.Header["X_auth_user_id"] = []string{"mallory"}
		req.Header["X-AUTH-ROLE"] = []string{"admin"}
		req.Header["X_Auth_Role"] = []string{"admin"}
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		require.Equal(t, 200, res.StatusCode)
		var s seen
		require.NoError(t, json.NewDecoder(res.Body).Decode(&s))
		return s
	}

	anon := ask("")
	assert.Nil(t, anon.UserID)
	assert.Nil(t, anon.Role)
	assert.Empty(t, anon.Environ, "a client copy reached the app")

	forged := ask(user[:len(user)-3] + "abc")
	assert.Nil(t, forged.UserID)
	assert.Empty(t, forged.Environ, "a client copy reached the app with a forged cookie")

	uma := ask(user)
	require.NotNil(t, uma.UserID)
	assert.Equal(t, "uma", *uma.UserID)
	assert.Equal(t, "user", *uma.Role)
	assert.Equal(t, map[string]string{"HTTP_X_AUTH_USER_ID": "uma", "HTTP_X_AUTH_ROLE": "user"}, uma.Environ)
}
