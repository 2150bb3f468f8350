package sticky

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSealedSIDOpensToItsWorker(t *testing.T) {
	c := New([]byte("a shared secret of the edges"))
	tag := c.Tag("127.0.0.1:5001")
	sid := c.Seal(tag, "Bq0Vq5ZfDP6QrQUXAAAB")
	assert.Len(t, sid, 20+SealLength)
	assert.True(t, strings.HasPrefix(sid, "Bq0Vq5ZfDP6QrQUXAAAB"))
	for _, ch := range sid {
		assert.Contains(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", string(ch))
	}
	gotTag, worker, ok := c.Open(sid)
	require.True(t, ok)
	assert.Equal(t, tag, gotTag)
	assert.Equal(t, "Bq0Vq5ZfDP6QrQUXAAAB", worker)
}

// Another edge with the same key routes the session the same way.
func TestSealOpensOnAnyEdgeWithTheSameKey(t *testing.T) {
	a, b := New([]byte("k")), New([]byte("k"))
	sid := a.Seal(a.Tag("w1:5001"), "abc")
	tag, worker, ok := b.Open(sid)
	require.True(t, ok)
	assert.Equal(t, b.Tag("w1:5001"), tag)
	assert.Equal(t, "abc", worker)
}

// A client can neither forge a sid, nor move a sealed worker sid to
// another worker, nor alter any character of it.
func TestTamperedOrForgedSIDsDoNotOpen(t *testing.T) {
	c := New([]byte("k"))
	sid := c.Seal(c.Tag("w1:5001"), "Bq0Vq5ZfDP6QrQUXAAAB")

	for i := range sid {
		for _, r := range []byte{'A', 'z', '-', '_', '0'} {
			if sid[i] == r {
				continue
			}
			forged := sid[:i] + string(r) + sid[i+1:]
			_, _, ok := c.Open(forged)
			assert.False(t, ok, "position %d changed to %c opened", i, r)
		}
	}
	other := New([]byte("other key"))
	_, _, ok := other.Open(sid)
	assert.False(t, ok, "sealed with another key")

	for _, s := range []string{"", "Bq0Vq5ZfDP6QrQUXAAAB", strings.Repeat("A", SealLength), sid[:len(sid)-1], sid + "A"} {
		_, _, ok := c.Open(s)
		assert.False(t, ok, s)
	}
}

func FuzzOpen(f *testing.F) {
	c := New([]byte("k"))
	f.Add(c.Seal(c.Tag("w"), "Bq0Vq5ZfDP6QrQUXAAAB"))
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, sid string) {
		tag, worker, ok := c.Open(sid)
		if ok && c.Seal(tag, worker) != sid {
			t.Fatalf("%q opened but does not re-seal to itself", sid)
		}
	})
}

func BenchmarkOpen(b *testing.B) {
	c := New([]byte("a shared secret of the edges"))
	sid := c.Seal(c.Tag("127.0.0.1:5001"), "Bq0Vq5ZfDP6QrQUXAAAB")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := c.Open(sid); !ok {
			b.Fatal("did not open")
		}
	}
}
