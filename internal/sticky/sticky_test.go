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
	sid := c.Seal(tag, "Bq0Vq5ZfDP6QrQUXAAAB", Owner{User: "7", Origin: "https://app.example"})
	assert.Len(t, sid, 20+SealLength)
	assert.True(t, strings.HasPrefix(sid, "Bq0Vq5ZfDP6QrQUXAAAB"))
	for _, ch := range sid {
		assert.Contains(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", string(ch))
	}
	s, ok := c.Open(sid)
	require.True(t, ok)
	assert.Equal(t, tag, s.Tag)
	assert.Equal(t, "Bq0Vq5ZfDP6QrQUXAAAB", s.WorkerSID)
	assert.True(t, c.OwnedBy(s, "7"))
	assert.True(t, c.OpenedFrom(s, "https://app.example"))
}

// The seal names the user who opened the session and the origin of the
// handshake: another user, anonymous, or another origin is told apart.
func TestSealBindsUserAndOrigin(t *testing.T) {
	c := New([]byte("k"))
	user, _ := c.Open(c.Seal(c.Tag("w1:5001"), "abc", Owner{User: "uma"}))
	assert.True(t, c.OwnedBy(user, "uma"))
	for _, other := range []string{"", "ada", "uma ", "Uma"} {
		assert.False(t, c.OwnedBy(user, other), other)
	}
	assert.True(t, c.OpenedFrom(user, ""))
	assert.False(t, c.OpenedFrom(user, "https://evil.example"))

	anon, _ := c.Open(c.Seal(c.Tag("w1:5001"), "abc", Owner{Origin: "https://app.example"}))
	assert.True(t, c.OwnedBy(anon, ""))
	assert.False(t, c.OwnedBy(anon, "uma"))
	assert.True(t, c.OpenedFrom(anon, "https://app.example"))
	assert.False(t, c.OpenedFrom(anon, "https://app.example.evil"))
}

// Another edge with the same key routes the session the same way.
func TestSealOpensOnAnyEdgeWithTheSameKey(t *testing.T) {
	a, b := New([]byte("k")), New([]byte("k"))
	sid := a.Seal(a.Tag("w1:5001"), "abc", Owner{User: "uma"})
	s, ok := b.Open(sid)
	require.True(t, ok)
	assert.Equal(t, b.Tag("w1:5001"), s.Tag)
	assert.Equal(t, "abc", s.WorkerSID)
	assert.True(t, b.OwnedBy(s, "uma"))
}

// A client can neither forge a sid, nor move a sealed worker sid to
// another worker, nor alter any character of it.
func TestTamperedOrForgedSIDsDoNotOpen(t *testing.T) {
	c := New([]byte("k"))
	sid := c.Seal(c.Tag("w1:5001"), "Bq0Vq5ZfDP6QrQUXAAAB", Owner{User: "uma"})

	for i := range sid {
		for _, r := range []byte{'A', 'z', '-', '_', '0'} {
			if sid[i] == r {
				continue
			}
			forged := sid[:i] + string(r) + sid[i+1:]
			_, ok := c.Open(forged)
			assert.False(t, ok, "position %d changed to %c opened", i, r)
		}
	}
	other := New([]byte("other key"))
	_, ok := other.Open(sid)
	assert.False(t, ok, "sealed with another key")

	for _, s := range []string{"", "Bq0Vq5ZfDP6QrQUXAAAB", strings.Repeat("A", SealLength), sid[:len(sid)-1], sid + "A"} {
		_, ok := c.Open(s)
		assert.False(t, ok, s)
	}
}

func FuzzOpen(f *testing.F) {
	c := New([]byte("k"))
	owners := []Owner{{}, {User: "uma"}, {User: "ada", Origin: "https://app.example"}}
	for _, o := range owners {
		f.Add(c.Seal(c.Tag("w"), "Bq0Vq5ZfDP6QrQUXAAAB", o))
	}
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, sid string) {
		s, ok := c.Open(sid)
		if !ok {
			return
		}
		for _, o := range owners {
			if c.OwnedBy(s, o.User) && c.OpenedFrom(s, o.Origin) {
				if c.Seal(s.Tag, s.WorkerSID, o) != sid {
					t.Fatalf("%q opened but does not re-seal to itself", sid)
				}
				return
			}
		}
		t.Fatalf("%q opened with an owner nobody sealed", sid)
	})
}

func BenchmarkOpen(b *testing.B) {
	c := New([]byte("a shared secret of the edges"))
	sid := c.Seal(c.Tag("127.0.0.1:5001"), "Bq0Vq5ZfDP6QrQUXAAAB", Owner{User: "7"})
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Open(sid); !ok {
			b.Fatal("did not open")
		}
	}
}
