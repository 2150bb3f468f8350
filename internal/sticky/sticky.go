// Package sticky binds an Engine.IO session to the worker that created it
// without any state at the edge: the session id a client sees carries an
// authenticated reference to its worker.
//
// A worker's open packet names its session, say "Bq0Vq5ZfDP6QrQUXAAAB".
// The edge hands the client that sid followed by a 20-character seal:
//
//	seal = base64url( tag(3 bytes) || mac(12 bytes) )
//	tag  = HMAC-SHA256(key, "upstream\x00" || upstream)[:3]
//	mac  = HMAC-SHA256(key, "sid\x00" || tag || worker sid)[:12]
//
// and, on each later request, checks the seal, finds the worker by its tag
// and forwards the worker's own sid. Any edge that shares the key routes
// the session the same way, a reload that keeps the key keeps every
// binding, and a client cannot steer a request to a worker of its choosing:
// without the key it cannot seal a sid (a 96-bit MAC), and a sealed sid
// names exactly one worker. The sid stays within the base64url alphabet
// Engine.IO clients expect.
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
	macSize = 12
	// SealLength is how many characters Seal appends to a worker's sid.
	SealLength = (len(Tag{}) + macSize) * 4 / 3
)

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

// Seal returns the sid the client sees for workerSID on the upstream
// tagged tag.
func (c *Codec) Seal(tag Tag, workerSID string) string {
	var raw [len(Tag{}) + macSize]byte
	copy(raw[:], tag[:])
	mac := c.sum([]byte("sid\x00"), tag[:], []byte(workerSID))
	copy(raw[len(tag):], mac[:macSize])
	buf := make([]byte, len(workerSID)+SealLength)
	copy(buf, workerSID)
	base64.RawURLEncoding.Encode(buf[len(workerSID):], raw[:])
	return string(buf)
}

// Open checks a sealed sid and returns the worker's sid and the tag of its
// upstream. ok is false for any sid the key did not seal.
func (c *Codec) Open(sid string) (tag Tag, workerSID string, ok bool) {
	if len(sid) <= SealLength {
		return Tag{}, "", false
	}
	workerSID = sid[:len(sid)-SealLength]
	var raw [len(Tag{}) + macSize]byte
	n, err := base64.RawURLEncoding.Strict().Decode(raw[:], []byte(sid[len(workerSID):]))
	if err != nil || n != len(raw) {
		return Tag{}, "", false
	}
	copy(tag[:], raw[:len(tag)])
	mac := c.sum([]byte("sid\x00"), tag[:], []byte(workerSID))
	if !hmac.Equal(mac[:macSize], raw[len(tag):]) {
		return Tag{}, "", false
	}
	return tag, workerSID, true
}
