package socketioproxy

import (
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseRateReadsEventsPerWindow(t *testing.T) {
	for in, want := range map[string]Rate{
		"30/m":    {Events: 30, Window: caddy.Duration(time.Minute)},
		"5/s":     {Events: 5, Window: caddy.Duration(time.Second)},
		"100/10s": {Events: 100, Window: caddy.Duration(10 * time.Second)},
		"1/h":     {Events: 1, Window: caddy.Duration(time.Hour)},
	} {
		got, err := parseRate(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, *got, in)
	}
	for _, bad := range []string{"", "30", "30/", "x/m", "0/m", "-1/s", "30/fortnight", "30/-1s"} {
		_, err := parseRate(bad)
		assert.Error(t, err, bad)
	}
}

// A bucket lets a burst through, refuses the next event with the wait
// until a token is back, and refills with time.
func TestBucketsRefuseOverTheRateAndRefill(t *testing.T) {
	at := time.Unix(1_700_000_000, 0)
	old := clock
	clock = func() time.Time { return at }
	t.Cleanup(func() { clock = old })

	r := &Rate{Events: 3, Window: caddy.Duration(time.Minute)}
	b, err := loadBuckets(&RateLimits{Connect: r, MaxTracked: 10})
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = bucketPools.Delete((&RateLimits{Connect: r, MaxTracked: 10}).bucketsKey()) })

	for i := range 3 {
		ok, _ := b.take("c:1.2.3.4", r, 1)
		assert.True(t, ok, "event %d", i)
	}
	ok, wait := b.take("c:1.2.3.4", r, 1)
	assert.False(t, ok)
	assert.Equal(t, 20*time.Second, wait)
	assert.Equal(t, "20", retryAfterSeconds(wait))

	ok, _ = b.take("c:5.6.7.8", r, 1)
	assert.True(t, ok, "another address has its own bucket")

	at = at.Add(20 * time.Second)
	ok, _ = b.take("c:1.2.3.4", r, 1)
	assert.True(t, ok, "a token is back after window/events")

	ok, _ = b.take("c:9.9.9.9", r, 4)
	assert.False(t, ok, "more than the burst at once is never allowed")
}

// The LRU bounds the addresses tracked.
func TestBucketsAreBounded(t *testing.T) {
	r := &Rate{Events: 1, Window: caddy.Duration(time.Hour)}
	rl := &RateLimits{Connect: r, MaxTracked: 100}
	b, err := loadBuckets(rl)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = bucketPools.Delete(rl.bucketsKey()) })
	for i := range 1000 {
		b.take(string(rune(i)), r, 1)
	}
	assert.Equal(t, 100, b.byKey.Len())
}

func TestClientKeyCountsIPv6ByItsSlash64(t *testing.T) {
	for in, want := range map[string]string{
		"198.51.100.7":         "198.51.100.7",
		"::ffff:198.51.100.7":  "198.51.100.7",
		"2001:db8:1:2::1":      "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::9": "2001:db8:1:2::/64",
		"fe80::1%eth0":         "fe80::/64",
		"not-an-ip":            "not-an-ip",
	} {
		if got := clientKey(in); got != want {
			t.Errorf("clientKey(%q) = %q, want %q", in, got, want)
		}
	}
}
