package upstreamfile

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFileUpstreamsFollowTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "workers")
	require.NoError(t, os.WriteFile(path, []byte("# workers\n127.0.0.1:5001\n\n 127.0.0.1:5002 \n"), 0o600))
	f := &FileUpstreams{Path: path, Refresh: caddy.Duration(time.Nanosecond)}
	require.NoError(t, f.Provision(caddy.Context{}))
	dials := func() []string {
		ups, err := f.GetUpstreams(nil)
		require.NoError(t, err)
		var out []string
		for _, u := range ups {
			out = append(out, u.Dial)
		}
		return out
	}
	assert.Equal(t, []string{"127.0.0.1:5001", "127.0.0.1:5002"}, dials())

	require.NoError(t, os.WriteFile(path, []byte("127.0.0.1:5003\n"), 0o600))
	require.NoError(t, os.Chtimes(path, time.Now().Add(time.Second), time.Now().Add(time.Second)))
	assert.Equal(t, []string{"127.0.0.1:5003"}, dials())

	require.NoError(t, os.WriteFile(path, []byte("not an address\n"), 0o600))
	require.NoError(t, os.Chtimes(path, time.Now().Add(2*time.Second), time.Now().Add(2*time.Second)))
	_, err := f.GetUpstreams(nil)
	assert.ErrorContains(t, err, "line 1 is not host:port")

	require.NoError(t, os.Remove(path))
	_, err = f.GetUpstreams(nil)
	assert.Error(t, err)
	assert.Error(t, (&FileUpstreams{}).Validate())
}

// Attack 6: lines that split as host:port but are no address: a port
// with a path after it, a host with URL syntax, a placeholder a request
// would fill in. Each would become the start of the worker's URLs.
func TestAttack6LinesThatAreNoAddressAreRefused(t *testing.T) {
	for _, line := range []string{
		"127.0.0.1:1/../x", "127.0.0.1:5000/admin?", "127.0.0.1:http", "127.0.0.1:0", "127.0.0.1:70000",
		"evil@127.0.0.1:5000", "a/b:5000", "{http.request.header.X-Worker}:5000",
	} {
		_, err := parse([]byte(line + "\n"))
		assert.Error(t, err, "%q", line)
	}
	list, err := parse([]byte("[::1]:5001\nworker-1.internal:5002\n"))
	require.NoError(t, err)
	assert.Len(t, list, 2)
}
