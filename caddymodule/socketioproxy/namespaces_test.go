package socketioproxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/flaskedge/flaskedge/internal/identity"
	"github.com/flaskedge/flaskedge/internal/security"
	"github.com/flaskedge/flaskedge/internal/socketio"
)

func rulesHandler() *Handler {
	h := &Handler{
		Namespaces: map[string]*NamespaceRule{
			"/admin": {Access: AccessRole, Roles: []string{"admin"}},
			"/chat":  {Access: AccessAuthenticated},
			"*":      {Access: AccessPublic},
		},
		security: zap.NewNop(),
	}
	h.policy = h.newPolicy()
	return h
}

func TestAdmitAppliesTheNamespaceRules(t *testing.T) {
	h := rulesHandler()
	anon, user, admin := identity.Identity{}, identity.Identity{UserID: "7", Roles: "user"}, identity.Identity{UserID: "1", Roles: "editor,admin"}
	for _, tc := range []struct {
		id     identity.Identity
		ns     string
		reason string // "" admits
	}{
		{anon, "/", ""}, {anon, "/chat", "unauthenticated"}, {anon, "/admin", "unauthenticated"},
		{user, "/chat", ""}, {user, "/admin", "role"}, {user, "/other", ""},
		{admin, "/admin", ""}, {admin, "/chat", ""},
		{admin, denialPrefix + "x", "reserved"},
	} {
		d := h.policy.admit(tc.id, tc.ns)
		if tc.reason == "" {
			assert.Nil(t, d, "%v %s", tc.id, tc.ns)
			continue
		}
		if assert.NotNil(t, d, "%v %s", tc.id, tc.ns) {
			assert.Equal(t, tc.reason, d.Data["reason"], "%v %s", tc.id, tc.ns)
		}
	}
	// A role is matched whole, not as a substring of another.
	assert.NotNil(t, h.policy.admit(identity.Identity{UserID: "2", Roles: "administrator"}, "/admin"))
}

// The worker's answer to a denial CONNECT becomes the CONNECT_ERROR the
// client expects for the namespace it asked for.
func TestDenialRoundTripsThroughTheWorkersAnswer(t *testing.T) {
	h := rulesHandler()
	d := h.policy.admit(identity.Identity{UserID: "7", Roles: "user"}, "/admin")
	connect := d.Connect()
	assert.True(t, strings.HasPrefix(string(connect), "40"+denialPrefix))
	assert.NotContains(t, string(connect[2:len(connect)-1]), ",")

	ns := string(connect[2 : len(connect)-1])
	for _, reply := range []string{`44` + ns + `,"Unable to connect"`, `40` + ns + `,{"sid":"x"}`} {
		ce, ok := socketio.DenialConnectError([]byte(reply))
		require.True(t, ok)
		assert.Equal(t, `44/admin,{"message":"The /admin namespace requires the role admin.","data":{"namespace":"/admin","reason":"role","required":["admin"]}}`, string(ce))
	}
	_, ok := socketio.DenialConnectError([]byte(`44/admin,"x"`))
	assert.False(t, ok)
}

func requestAs(id, role string) *http.Request {
	r := httptest.NewRequest("POST", "/socket.io/?EIO=4&transport=polling&sid=x", nil)
	repl := caddy.NewReplacer()
	if id != "" {
		repl.Set("http.auth.user.id", id)
		repl.Set("http.auth.user.role", role)
	}
	return r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
}

// In a polling body, only the denied CONNECT is replaced; the packets
// around it, other namespaces included, pass as they were.
func TestCheckPayloadReplacesOnlyTheDeniedConnect(t *testing.T) {
	h := rulesHandler()
	body := []byte("40\x1e40/admin,{\"token\":1}\x1e42[\"echo\",1]\x1e40/chat,")
	out, _, err := h.checkPayload(h.policy, security.Client{}, identity.Of(requestAs("7", "user")), body, new(attachments))
	require.NoError(t, err)
	parts := strings.Split(string(out), "\x1e")
	require.Len(t, parts, 4)
	assert.Equal(t, "40", parts[0])
	assert.True(t, strings.HasPrefix(parts[1], "40"+denialPrefix), parts[1])
	assert.Equal(t, "42[\"echo\",1]", parts[2])
	assert.Equal(t, "40/chat,", parts[3])

	same, _, err := h.checkPayload(h.policy, security.Client{}, identity.Of(requestAs("1", "admin")), body, new(attachments))
	require.NoError(t, err)
	assert.Equal(t, string(body), string(same))
}

// python-socketio reads these as CONNECTs to /admin; the edge does too.
func TestNonCanonicalConnectsToAdminAreDenied(t *testing.T) {
	h := rulesHandler()
	for _, p := range []string{
		"40/admin,", "40/admin", "40/admin?x=1,", "401-/admin,", "40/admin,{}", "400-/admin,",
	} {
		out, _, err := h.checkPayload(h.policy, security.Client{}, identity.Of(requestAs("7", "user")), []byte(p), new(attachments))
		if err != nil {
			continue // refused outright is as good
		}
		assert.True(t, strings.HasPrefix(string(out), "40"+denialPrefix), "%q forwarded as %q", p, out)
	}
}

func TestFixDenialRepliesLeavesOtherPacketsAlone(t *testing.T) {
	d := rulesHandler().policy.admit(identity.Identity{}, "/chat")
	ns := string(d.Connect()[2 : len(d.Connect())-1])
	body := []byte("2\x1e44" + ns + ",\"Unable to connect\"\x1e42[\"x\"]")
	out := string(fixDenialReplies(body))
	assert.Equal(t, "2\x1e44/chat,{\"message\":\"Log in to use the /chat namespace.\",\"data\":{\"namespace\":\"/chat\",\"reason\":\"unauthenticated\"}}\x1e42[\"x\"]", out)
	plain := []byte("2\x1e42[\"x\"]")
	assert.Equal(t, &plain[0], &fixDenialReplies(plain)[0], "no copy without a denial")
}

// python-socketio takes the messages after a BINARY_EVENT as its
// attachments, whatever they hold: the edge reads them so too, and drops
// the attachments of a packet it replaced.
func TestCheckPayloadFollowsPendingAttachments(t *testing.T) {
	h := rulesHandler()
	admin, user := identity.Identity{UserID: "1", Roles: "admin"}, identity.Identity{UserID: "7", Roles: "user"}
	var att attachments
	body := []byte("451-/admin,[\"x\",{\"_placeholder\":true,\"num\":0}]\x1e41/admin,")
	out, owed, err := h.checkPayload(h.policy, security.Client{}, admin, body, &att)
	require.NoError(t, err)
	assert.Equal(t, string(body), string(out))
	assert.Empty(t, owed)
	assert.Zero(t, att.pending, "the text after the header was its attachment")

	// Split over two bodies, the attachment is still one.
	att = attachments{}
	_, _, err = h.checkPayload(h.policy, security.Client{}, admin, []byte("452-/admin,[\"x\"]"), &att)
	require.NoError(t, err)
	assert.EqualValues(t, 2, att.pending)

	// A user's binary event to /admin: one DISCONNECT, its attachments
	// dropped, and a second one to /admin dropped whole.
	att = attachments{}
	body = []byte("451-/admin,[\"x\",{\"_placeholder\":true,\"num\":0}]\x1ebAQID\x1e42/admin,[\"y\"]\x1e42[\"z\"]")
	out, owed, err = h.checkPayload(h.policy, security.Client{}, user, body, &att)
	require.NoError(t, err)
	assert.Equal(t, "41/admin,\x1e42[\"z\"]", string(out))
	assert.Equal(t, [][]byte{[]byte("41/admin,")}, owed)
}

// Engine.IO's own packets never reach python-socketio, so they are not
// attachments; a binary packet announcing none is refused; and a record
// in the attachment window is still checked as a packet.
func TestAttachmentsCountWhatPythonSocketIOSees(t *testing.T) {
	h := rulesHandler()
	anon := identity.Identity{}
	att := attachments{}
	out, _, err := h.checkPayload(h.policy, security.Client{}, anon, []byte("451-[\"x\",{\"_placeholder\":true,\"num\":0}]\x1e3\x1e6"), &att)
	require.NoError(t, err)
	assert.EqualValues(t, 1, att.pending, "a pong and a noop are no attachments")
	assert.Equal(t, "451-[\"x\",{\"_placeholder\":true,\"num\":0}]\x1e3\x1e6", string(out))

	out, _, err = h.checkPayload(h.policy, security.Client{}, anon, []byte("40/chat,"), &att)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(out), "40"+denialPrefix), "checked although python may take it as the attachment")

	for _, p := range []string{`45["x"]`, `46/admin,1["x"]`, `450-["x"]`} {
		_, _, err := h.checkPayload(h.policy, security.Client{}, anon, []byte(p), new(attachments))
		assert.Error(t, err, p)
	}
}

// A binary event sent as an awaited attachment is an attachment to
// python, not a new count: the edge's count goes on.
func TestAnAttachmentNeverStartsACountOfItsOwn(t *testing.T) {
	h := rulesHandler()
	att := attachments{}
	body := "455-[\"e\",{\"_placeholder\":true,\"num\":0}]\x1e451-[\"e\",{\"_placeholder\":true,\"num\":0}]\x1e42[\"x\"]"
	_, _, err := h.checkPayload(h.policy, security.Client{}, identity.Identity{}, []byte(body), &att)
	require.NoError(t, err)
	assert.EqualValues(t, 3, att.pending)
}
