package upstreamtls

import (
	"context"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

func parse(t *testing.T, input string) error {
	t.Helper()
	d := caddyfile.NewTestDispenser(input)
	d.Next()
	tc, err := Parse(d)
	if err == nil {
		require.NotNil(t, tc)
	}
	return err
}

// The block is reverse_proxy's, read by its own parser into its own type.
func TestParseReadsReverseProxysTLSSettings(t *testing.T) {
	d := caddyfile.NewTestDispenser("transport http {\n tls_trust_pool file /ca.pem\n tls_server_name w.internal\n tls_client_auth /c.pem /k.pem\n}")
	d.Next()
	tc, err := Parse(d)
	require.NoError(t, err)
	require.NotNil(t, tc)
	assert.Equal(t, "w.internal", tc.ServerName)
	assert.Equal(t, "/c.pem", tc.ClientCertificateFile)
	assert.JSONEq(t, `{"provider":"file","pem_files":["/ca.pem"]}`, string(tc.CARaw))
}

func TestParseErrorsSayWhatToWrite(t *testing.T) {
	for input, want := range map[string]string{
		"transport":                                     "transport takes http and a block",
		"transport fastcgi {\n tls\n}":                  "transport takes http and a block",
		"transport http {\n keepalive off\n}":           "keepalive is not taken here",
		"transport http {\n tls_except_ports 80\n}":     "plain and TLS workers are not mixed",
		"transport http extra {\n tls\n}":               "takes its settings in a block",
		"transport http {\n tls_renegotiation often\n}": "wrong argument count",
	} {
		err := parse(t, input)
		require.Error(t, err, input)
		assert.Contains(t, err.Error(), want, input)
	}
}

// Skipping verification works, as in reverse_proxy, and is logged as an
// error that names the fix every time a config loads.
func TestInsecureSkipVerifyIsLoudAtLoad(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	core, logs := observer.New(zap.InfoLevel)
	cfg, err := ClientConfig(ctx, &reverseproxy.TLSConfig{InsecureSkipVerify: true}, zap.New(core), "socketio_proxy")
	require.NoError(t, err)
	assert.True(t, cfg.InsecureSkipVerify)
	require.Equal(t, 1, logs.Len())
	entry := logs.All()[0]
	assert.Equal(t, zap.ErrorLevel, entry.Level)
	assert.Contains(t, entry.Message, "NOT VERIFIED")
	assert.Contains(t, entry.Message, "tls_trust_pool file")

	cfg, err = ClientConfig(ctx, nil, zap.New(core), "socketio_proxy")
	require.NoError(t, err)
	assert.False(t, cfg.InsecureSkipVerify, "https:// without settings: verified against the system's roots")
	assert.Nil(t, cfg.RootCAs)
	assert.Equal(t, 1, logs.Len())
}
