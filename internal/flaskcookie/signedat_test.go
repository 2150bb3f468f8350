package flaskcookie

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestSignedAtReadsTheCookieTimestamp(t *testing.T) {
	// itsdangerous' timestamp 1700000000 is "ZVPxAA".
	at, ok := SignedAt("eyJfdXNlcl9pZCI6IjcifQ.ZVPxAA.sig")
	assert.True(t, ok)
	assert.Equal(t, time.Unix(1700000000, 0), at)
	for _, bad := range []string{"", "nodots", "a.b", "a..sig", "a.AAAA.sig", "a.!!!.sig"} {
		_, ok := SignedAt(bad)
		assert.False(t, ok, bad)
	}
}
