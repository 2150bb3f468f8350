// Package sticky binds an Engine.IO session to the worker that created it,
// to the user who opened it and to the origin it was opened from, without
// any state at the edge: the session id a client sees carries an
// authenticated reference to all three.
//
// A worker's open packet names its session, say "Bq0Vq5ZfDP6QrQUXAAAB".
// The edge hands the client that sid followed by a 32-character seal:
//
//	seal   = base64url( tag(3 bytes) || user(6) || origin(3) || mac(12) )
//	tag    = HMAC-SHA256(key, "upstream\x00" || upstream)[:3]
//	user   = HMAC-SHA256(key, "user\x00" || verified user id, "" if anonymous)[:6]
//	origin = HMAC-SHA256(key, "origin\x00" || Origin header of the handshake)[:3]
//	mac    = HMAC-SHA256(key, "sid\x00" || tag || user || origin || worker sid)[:12]
//
// and, on each later request, checks the seal, finds the worker by its tag
// and forwards the worker's own sid. Any edge that shares the key routes
// the session the same way and knows whose it is, a reload that keeps the
// key keeps every binding, and a client cannot steer a request to a worker
// of its choosing nor claim a session as another user's: without the key
// it cannot seal a sid (a 96-bit MAC), and a sealed sid names exactly one
// worker, one user and one origin. The digests are keyed, so a sid tells
// nobody without the key who its user is. The sid stays within the
// base64url alphabet Engine.IO clients expect.
package sticky

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"sync"
)

// Tag names an upstream inside a sealed sid.
type Tag [3]byte

const (
	userSize   = 6
	originSize = 3
	macSize    = 12
	rawSize    = len(Tag{}) + userSize + originSize + macSize
	// SealLength is how many characters Seal appends to a worker's sid.
	SealLength = rawSize * 4 / 3
)

// Owner is who opened a session: the verified user id ("" for an
// anonymous client) and the Origin header of the handshake ("" when it
// had none).
type Owner struct {
	User   string
	Origin string
}

// Sealed is what a sealed sid says of its session.
type Sealed struct {
	Tag       Tag
	WorkerSID string
	user      [userSize]byte
	origin    [originSize]byte
}

// Codec seals and opens session ids with one key.
type Codec struct {
	macs sync.Pool // of hash.Hash, keyed HMAC-SHA256
}

// New returns a Codec keyed by key, which should be at least 32 random
// bytes (or a long passphrase) shared by every edge of a deployment.
func New(key []byte) *Codec {
	k := append([]byte(nil), key...)
	return &Codec{macs: sync.Pool{New: func() any { return hmac.New(sha256.New, k) }}}
}

func (c *Codec) sum(parts ...[]byte) [sha256.Size]byte {
	m := c.macs.Get().(hash.Hash)
	m.Reset()
	for _, p := range parts {
		m.Write(p)
	}
	var out [sha256.Size]byte
	m.Sum(out[:0])
	c.macs.Put(m)
	return out
}

// Tag returns the tag of the upstream named upstream (its dial address).
func (c *Codec) Tag(upstream string) Tag {
	s := c.sum([]byte("upstream\x00"), []byte(upstream))
	return Tag{s[0], s[1], s[2]}
}

func (c *Codec) userDigest(user string) (d [userSize]byte) {
	s := c.sum([]byte("user\x00"), []byte(user))
	copy(d[:], s[:])
	return d
}

func (c *Codec) originDigest(origin string) (d [originSize]byte) {
	s := c.sum([]byte("origin\x00"), []byte(origin))
	copy(d[:], s[:])
	return d
}

func (c *Codec) mac(raw *[rawSize]byte, workerSID string) [sha256.Size]byte {
	return c.sum([]byte("sid\x00"), raw[:rawSize-macSize], []byte(workerSID))
}

// Seal returns the sid the client sees for workerSID on the upstream
// tagged tag, opened by owner.
func (c *Codec) Seal(tag Tag, workerSID string, owner Owner) string {
	var raw [rawSize]byte
	n := copy(raw[:], tag[:])
	u, o := c.userDigest(owner.User), c.originDigest(owner.Origin)
	n += copy(raw[n:], u[:])
	n += copy(raw[n:], o[:])
	mac := c.mac(&raw, workerSID)
	copy(raw[n:], mac[:macSize])
	buf := make([]byte, len(workerSID)+SealLength)
	copy(buf, workerSID)
	base64.RawURLEncoding.Encode(buf[len(workerSID):], raw[:])
	return string(buf)
}

// Open checks a sealed sid and returns what it says. ok is false for any
// sid the key did not seal.
func (c *Codec) Open(sid string) (s Sealed, ok bool) {
	if len(sid) <= SealLength {
		return Sealed{}, false
	}
	workerSID := sid[:len(sid)-SealLength]
	var raw [rawSize]byte
	n, err := base64.RawURLEncoding.Strict().Decode(raw[:], []byte(sid[len(workerSID):]))
	if err != nil || n != len(raw) {
		return Sealed{}, false
	}
	mac := c.mac(&raw, workerSID)
	if !hmac.Equal(mac[:macSize], raw[rawSize-macSize:]) {
		return Sealed{}, false
	}
	s.WorkerSID = workerSID
	n = copy(s.Tag[:], raw[:])
	n += copy(s.user[:], raw[n:])
	copy(s.origin[:], raw[n:])
	return s, true
}

// OwnedBy reports whether the session was opened by user ("" for
// anonymous).
func (c *Codec) OwnedBy(s Sealed, user string) bool {
	d := c.userDigest(user)
	return hmac.Equal(d[:], s.user[:])
}

// OpenedFrom reports whether the session's handshake carried origin as
// its Origin header ("" for none).
func (c *Codec) OpenedFrom(s Sealed, origin string) bool {
	d := c.originDigest(origin)
	return hmac.Equal(d[:], s.origin[:])
}
