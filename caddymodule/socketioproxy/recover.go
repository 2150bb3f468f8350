package socketioproxy

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// Connection state recovery (Recover) is the protocol of the Node
// socket.io server's connectionStateRecovery, whose client half every
// socket.io-client 4.x carries: the CONNECT reply holds a private session
// id (pid), every event carries an offset as its last argument, and a
// client that reconnects sends {pid, offset} in its CONNECT to get its
// session back with the events it missed. python-socketio has no server
// half; the edge plays it. With Recover set, the edge speaks Engine.IO to
// the client itself and holds one WebSocket to the worker per session
// (see bridge.go), so that the worker's session can outlive the client's
// connection: while the client is away the edge answers the worker's
// pings and holds what it sends, and the worker never sees a disconnect.

// Recover configures connection state recovery.
type Recover struct {
	// Window is how long the edge holds a session whose client went
	// away: a client that reconnects within it, through this edge, gets
	// its session back (socket.recovered is true); past it the worker's
	// session ends as it does without recovery. Required.
	Window caddy.Duration `json:"window,omitempty"`

	// Namespaces are the namespaces whose sockets recover; empty means
	// every namespace. The worker's session is held while at least one
	// of them is connected; the others are disconnected at the worker
	// when the client goes away, as without recovery.
	Namespaces []string `json:"namespaces,omitempty"`

	// MaxPackets bounds the packets held for one session: the events
	// the client may not have received yet and everything the worker
	// sent while it was away. Past it the session can no longer be
	// recovered and ends. Default: 1000.
	MaxPackets int `json:"max_packets,omitempty"`

	// MaxBytes bounds the bytes of those packets. Default: 1 MiB.
	MaxBytes int64 `json:"max_bytes,omitempty"`
}

// Defaults of Recover.
const (
	DefaultRecoverMaxPackets = 1000
	DefaultRecoverMaxBytes   = 1 << 20
)

func (rc *Recover) provision() {
	if rc.MaxPackets == 0 {
		rc.MaxPackets = DefaultRecoverMaxPackets
	}
	if rc.MaxBytes == 0 {
		rc.MaxBytes = DefaultRecoverMaxBytes
	}
}

func (rc *Recover) validate() []error {
	var problems []error
	if rc.Window <= 0 {
		problems = append(problems, errors.New("recover needs a window, e.g. `recover 30s`"))
	}
	if rc.MaxPackets < 0 {
		problems = append(problems, fmt.Errorf("recover max_packets %d is negative", rc.MaxPackets))
	}
	if rc.MaxBytes < 0 {
		problems = append(problems, fmt.Errorf("recover max_bytes %d is negative", rc.MaxBytes))
	}
	for _, ns := range rc.Namespaces {
		if !strings.HasPrefix(ns, "/") {
			problems = append(problems, fmt.Errorf("recover namespace %q does not start with '/'", ns))
		}
	}
	return problems
}

// covers reports whether sockets of namespace ns recover.
func (rc *Recover) covers(ns string) bool {
	return len(rc.Namespaces) == 0 || slices.Contains(rc.Namespaces, ns)
}

// edgeID tells this process's pids from another edge's (or an earlier
// run's): a pid is only ever recovered by the process that minted it.
var edgeID = func() (id [8]byte) {
	_, _ = rand.Read(id[:])
	return id
}()

// pidMAC is how many bytes of HMAC-SHA256 seal a pid.
const pidMAC = 16

// pidSealer mints and opens pids: edge id, bridge id and a MAC over both
// and the namespace, under a key derived from the sticky secret, so that a
// pid cannot be forged, nor carried to another namespace.
type pidSealer struct{ key []byte }

func newPIDSealer(stickyKey []byte) *pidSealer {
	k := sha256.Sum256(append([]byte("flaskedge recovery pid\x00"), stickyKey...))
	return &pidSealer{key: k[:]}
}

func (s *pidSealer) mac(edge [8]byte, bridge [16]byte, ns string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write(edge[:])
	m.Write(bridge[:])
	m.Write([]byte(ns))
	return m.Sum(nil)[:pidMAC]
}

func (s *pidSealer) seal(bridge [16]byte, ns string) string {
	raw := make([]byte, 0, 8+16+pidMAC)
	raw = append(raw, edgeID[:]...)
	raw = append(raw, bridge[:]...)
	raw = append(raw, s.mac(edgeID, bridge, ns)...)
	return base64.RawURLEncoding.EncodeToString(raw)
}

// Why a presented pid is not recovered, for the log.
var (
	errPIDForged    = errors.New("pid not sealed by this deployment's sticky_secret, or for another namespace")
	errPIDOtherEdge = errors.New("pid minted by another edge, or before this edge restarted")
)

// open returns the bridge id of a pid this edge minted for namespace ns.
func (s *pidSealer) open(pid, ns string) ([16]byte, error) {
	var bridge [16]byte
	raw, err := base64.RawURLEncoding.Strict().DecodeString(pid)
	if err != nil || len(raw) != 8+16+pidMAC {
		return bridge, errPIDForged
	}
	var edge [8]byte
	copy(edge[:], raw[:8])
	copy(bridge[:], raw[8:24])
	if !hmac.Equal(raw[24:], s.mac(edge, bridge, ns)) {
		return bridge, errPIDForged
	}
	if edge != edgeID {
		return bridge, errPIDOtherEdge
	}
	return bridge, nil
}

// bridgeTable finds the live bridges of the process: by the sealed sid a
// client uses, and by bridge id (the pid's). Bridges outlive configs, so
// the table is the process's, as the sessions are.
type bridgeTable struct {
	mu    sync.Mutex
	bySID map[string]*bridge
	byID  map[[16]byte]*bridge
}

// adoptMu serializes adoptions (see bridge.adopt).
var adoptMu sync.Mutex

var bridges = &bridgeTable{bySID: make(map[string]*bridge), byID: make(map[[16]byte]*bridge)}

func (t *bridgeTable) add(b *bridge) {
	t.mu.Lock()
	t.bySID[b.openSID] = b
	t.byID[b.id] = b
	t.mu.Unlock()
}

// route makes sid (a client's) lead to b.
func (t *bridgeTable) route(sid string, b *bridge) {
	t.mu.Lock()
	t.bySID[sid] = b
	t.mu.Unlock()
}

func (t *bridgeTable) lookup(sid string) *bridge {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.bySID[sid]
}

func (t *bridgeTable) byPID(id [16]byte) *bridge {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byID[id]
}

// remove forgets b and every sid that leads to it.
func (t *bridgeTable) remove(b *bridge, sids ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byID[b.id] == b {
		delete(t.byID, b.id)
	}
	for _, sid := range sids {
		if t.bySID[sid] == b {
			delete(t.bySID, sid)
		}
	}
}

// heldCount is the number of bridges whose client is away.
func (t *bridgeTable) heldCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, b := range t.byID {
		if b.isAway() {
			n++
		}
	}
	return n
}

// recoveryTotals are the process's recovery outcomes, for the snapshot.
var recoveryTotals struct {
	sync.Mutex
	recovered, expired, overflowed, refused, replayed uint64
}

func countRecovery(result string, replayed int) {
	recoveryTotals.Lock()
	switch result {
	case "recovered":
		recoveryTotals.recovered++
	case "expired":
		recoveryTotals.expired++
	case "overflowed":
		recoveryTotals.overflowed++
	case "refused":
		recoveryTotals.refused++
	}
	recoveryTotals.replayed += uint64(replayed)
	recoveryTotals.Unlock()
	recoveryResult(result)
	if replayed > 0 {
		recoveryReplayed(replayed)
	}
}

// heldSince is how long ago a held session's client went away, for logs.
func heldSince(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }
