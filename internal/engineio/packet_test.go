package engineio

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPacketsSplitsAPollingPayload(t *testing.T) {
	var got []string
	err := Packets([]byte("2\x1e40/admin,{}\x1e4hello\x1ebAQID"), func(p []byte) error {
		got = append(got, string(p))
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"2", "40/admin,{}", "4hello", "bAQID"}, got)
}

func TestPacketsRefusesEmptyRecords(t *testing.T) {
	for _, body := range []string{"", "\x1e", "4a\x1e", "\x1e4a", "4a\x1e\x1e4b"} {
		err := Packets([]byte(body), func([]byte) error { return nil })
		assert.ErrorIs(t, err, ErrEmptyPacket, "%q", body)
	}
}

func TestPacketsStopsAtTheCallbacksError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := Packets([]byte("4a\x1e4b\x1e4c"), func([]byte) error { n++; return stop })
	assert.Equal(t, stop, err)
	assert.Equal(t, 1, n)
}

func TestParseOpenReadsPythonEngineIOsOpenPacket(t *testing.T) {
	o, err := ParseOpen([]byte(`0{"sid":"Bq0Vq5ZfDP6QrQUXAAAB","upgrades":["websocket"],"pingTimeout":20000,"pingInterval":25000}`))
	require.NoError(t, err)
	assert.Equal(t, OpenPacket{SID: "Bq0Vq5ZfDP6QrQUXAAAB", Upgrades: []string{"websocket"}, PingTimeout: 20000, PingInterval: 25000}, o)

	for _, bad := range []string{"", "4{}", "0", `0{"sid":""}`, `0{"sid":"a/b"}`, "0{"} {
		_, err := ParseOpen([]byte(bad))
		assert.Error(t, err, bad)
	}
}

func FuzzPackets(f *testing.F) {
	f.Add("2\x1e40/admin,{}\x1e4hello")
	f.Add("\x1e\x1e")
	f.Fuzz(func(t *testing.T, payload string) {
		var parts []string
		err := Packets([]byte(payload), func(p []byte) error {
			parts = append(parts, string(p))
			return nil
		})
		if err == nil && strings.Join(parts, "\x1e") != payload {
			t.Fatalf("packets %q do not rebuild %q", parts, payload)
		}
	})
}

func TestReplaceOpenSIDKeepsTheOtherFields(t *testing.T) {
	out, o, err := ReplaceOpenSID([]byte(`0{"sid":"abc","upgrades":["websocket"],"pingTimeout":20000,"pingInterval":25000,"x":1}`), "abcSEALED")
	require.NoError(t, err)
	assert.Equal(t, "abc", o.SID)
	assert.Equal(t, byte('0'), out[0])
	assert.JSONEq(t, `{"sid":"abcSEALED","upgrades":["websocket"],"pingTimeout":20000,"pingInterval":25000,"x":1}`, string(out[1:]))
}
