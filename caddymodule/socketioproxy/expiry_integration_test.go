package socketioproxy_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// An admin's cookie that has outlived the edge's max_age counts as no
// cookie at all, through the running stack: the edge stops handing the
// worker the admin's identity and denies /admin with the anonymous
// CONNECT_ERROR, while the worker itself (PERMANENT_SESSION_LIFETIME of
// 31 days) would still take the cookie. Flask's cookies carry their
// signing time in whole seconds; the edge refuses one signed more than
// max_age ago, as itsdangerous does.
func TestExpiredSessionCookieCountsAsAnonymousAtTheEdge(t *testing.T) {
	const maxAge = 3 * time.Second
	edgeURL, worker := startRuledStack(t, fmt.Sprintf("max_age %s", maxAge))

	admin := testenv.Login(t, worker.URL(), "ada", "admin")
	signed := time.Now()

	edgeIdentity := func() (userID any) {
		var got struct {
			UserID any `json:"user_id"`
		}
		getJSON(t, edgeURL+"/api/edge-identity", admin, &got)
		return got.UserID
	}
	adminConnect := func() testenv.ProbeResult {
		return testenv.RunProbe(t, testenv.ProbeOptions{URL: edgeURL, Namespace: "/admin",
			Transports: []string{"websocket"}, TimeoutMs: 15000,
			ExtraHeaders: map[string]string{"Cookie": admin}})
	}

	// Fresh: the edge vouches for the admin and lets them into /admin.
	require.Equal(t, "ada", edgeIdentity())
	fresh := adminConnect()
	require.Less(t, time.Since(signed), maxAge, "the fresh checks took longer than max_age; nothing below would mean anything")
	require.Empty(t, fresh.Failures, "a fresh admin cookie was refused")

	// Poll until the edge stops vouching; it must within max_age plus the
	// second the cookie's timestamp is truncated to, and not before
	// max_age has passed.
	deadline := signed.Add(maxAge + 2*time.Second)
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for edgeIdentity() != nil {
		require.True(t, time.Now().Before(deadline), "the edge still vouched for a cookie signed %v ago with max_age %v", time.Since(signed), maxAge)
		<-poll.C
	}
	assert.GreaterOrEqual(t, time.Since(signed), maxAge-time.Second, "the edge dropped the identity before max_age")

	res := adminConnect()
	require.Len(t, res.ConnectErrors, 1, "an expired admin cookie was let into /admin")
	assert.Equal(t, "Log in to use the /admin namespace.", res.ConnectErrors[0].Message)
	data, _ := res.ConnectErrors[0].Data.(map[string]any)
	assert.Equal(t, "unauthenticated", data["reason"])

	// The worker, asked directly, still takes the cookie: the refusal was
	// the edge's max_age, not a cookie the worker had stopped accepting.
	var who struct {
		ID   string `json:"id"`
		Role string `json:"role"`
	}
	getJSON(t, worker.URL()+"/api/whoami", admin, &who)
	assert.Equal(t, "ada", who.ID)
	assert.Equal(t, "admin", who.Role)
}

// getJSON GETs url with the cookie header and decodes a 200 answer.
func getJSON(t *testing.T, url, cookie string, into any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Cookie", cookie)
	client := &http.Client{Timeout: 5 * time.Second}
	res, err := client.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, "GET %s", url)
	require.NoError(t, json.NewDecoder(res.Body).Decode(into))
}
