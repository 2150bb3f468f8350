package pathdirective

import (
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testSyntax = Syntax{Directive: "page", DefaultPath: "/page/", DefaultEngineIOPath: "/socket.io/"}

// UnmarshalSubdirective is false for a name that is not in the table,
// so that a directive offering these beside others can try the next.
func TestUnmarshalSubdirectiveReadsOnlyTheTablesNames(t *testing.T) {
	var path, engine string
	f := Fields{Path: &path, EngineIOPath: &engine}
	d := caddyfile.NewTestDispenser("engineio_path /ws/\nrole admin")
	require.True(t, d.Next())
	ok, err := testSyntax.UnmarshalSubdirective(d, f)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "/ws/", engine)
	require.True(t, d.Next())
	ok, err = testSyntax.UnmarshalSubdirective(d, f)
	assert.NoError(t, err)
	assert.False(t, ok)
	assert.Equal(t, []string{"engineio_path"}, Subdirectives())
}

func TestUnmarshalNamesTheDirectiveInItsErrors(t *testing.T) {
	var path, engine string
	err := testSyntax.Unmarshal(caddyfile.NewTestDispenser("page /a/ /b/"), Fields{Path: &path, EngineIOPath: &engine})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "page takes one path, got also \"/b/\"; write `page [<matcher>] [<path>]`, e.g. `page /page/`")
}
