package socketioproxy

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/flaskedge/flaskedge/internal/engineio"
	"github.com/flaskedge/flaskedge/internal/identity"
	"github.com/flaskedge/flaskedge/internal/security"
	"github.com/flaskedge/flaskedge/internal/socketio"
)

// NamespaceRule says who may connect to a Socket.IO namespace.
type NamespaceRule struct {
	// Access is "public" (anyone), "authenticated" (a verified user id)
	// or "role" (a verified user with one of Roles).
	Access string `json:"access"`
	// Roles admitted when Access is "role"; any one of them suffices.
	Roles []string `json:"roles,omitempty"`
}

// The values of NamespaceRule.Access.
const (
	AccessPublic        = "public"
	AccessAuthenticated = "authenticated"
	AccessRole          = "role"
)

// DefaultNamespaceRule is the key in Handler.Namespaces of the rule for
// namespaces not listed.
const DefaultNamespaceRule = "*"

func (nr *NamespaceRule) validate(ns string) error {
	if ns != DefaultNamespaceRule && (!strings.HasPrefix(ns, "/") || strings.ContainsAny(ns, ",?")) {
		return fmt.Errorf("socketio_proxy: namespace %q must start with / and hold no ',' or '?', e.g. /admin (or * for the default rule)", ns)
	}
	if strings.HasPrefix(ns, denialPrefix) {
		return fmt.Errorf("socketio_proxy: namespace %q is reserved by the edge", ns)
	}
	switch nr.Access {
	case AccessPublic, AccessAuthenticated:
		if len(nr.Roles) > 0 {
			return fmt.Errorf("socketio_proxy: namespace %s: roles are for access role, not %s", ns, nr.Access)
		}
	case AccessRole:
		if len(nr.Roles) == 0 || slices.Contains(nr.Roles, "") {
			return fmt.Errorf("socketio_proxy: namespace %s: access role needs role names, e.g. `namespace %s role admin`", ns, ns)
		}
	default:
		return fmt.Errorf("socketio_proxy: namespace %s: access %q is unknown; use public, authenticated or role", ns, nr.Access)
	}
	return nil
}

// denial is a refused CONNECT, what the client is told, and why, for
// the log.
type denial struct {
	socketio.Denial
	reason string
}

func newDenial(ns, message string, data map[string]any, reason string) *denial {
	return &denial{socketio.Denial{Namespace: ns, Message: message, Data: data}, reason}
}

// deniesAny reports whether some rule of p denies id: a namespace the
// edge does not know of a session could be one it denies.
func (p *policy) deniesAny(id identity.Identity) bool {
	for ns := range p.namespaces {
		if p.admit(id, ns) != nil {
			return true
		}
	}
	return false
}

// admit applies the namespace's rule to the client; nil admits.
func (p *policy) admit(id identity.Identity, ns string) *denial {
	if strings.HasPrefix(ns, denialPrefix) {
		return newDenial(ns, "This namespace is reserved by the edge.",
			map[string]any{"reason": "reserved", "namespace": ns}, "reserved namespace")
	}
	rule, ok := p.namespaces[ns]
	if !ok {
		if rule, ok = p.namespaces[DefaultNamespaceRule]; !ok {
			return nil
		}
	}
	switch {
	case rule.Access == AccessPublic:
		return nil
	case id.Anonymous():
		return newDenial(ns, "Log in to use the "+ns+" namespace.",
			map[string]any{"reason": "unauthenticated", "namespace": ns}, "not logged in")
	case rule.Access == AccessAuthenticated || id.HasRole(rule.Roles):
		return nil
	}
	return newDenial(ns, "The "+ns+" namespace requires the role "+strings.Join(rule.Roles, " or ")+".",
		map[string]any{"reason": "role", "namespace": ns, "required": rule.Roles}, "role missing")
}

// A denied CONNECT reaches the worker as a CONNECT to the edge's marker
// namespace (see socketio.Denial), whose answer whichever edge relays it
// turns into the client's CONNECT_ERROR.
const denialPrefix = socketio.DenialPrefix

// errMalformedPacket is a client packet the edge will not forward.
type errMalformedPacket struct{ err error }

func (e errMalformedPacket) Error() string { return "malformed Socket.IO packet: " + e.err.Error() }

// who is a session's user: as of now (with whoami, asking the app
// within its TTL) for the rare decision that needs it, a CONNECT, and as
// last known for every other packet.
type who interface {
	current() identity.Identity
	recent() identity.Identity
}

// requestIdentity is the user of a polling request, verified for it.
type requestIdentity struct{ id identity.Identity }

func (r requestIdentity) current() identity.Identity { return r.id }
func (r requestIdentity) recent() identity.Identity  { return r.id }

// checkPacket reads one Engine.IO packet from the client as
// python-socketio will, refusing one it cannot read exactly so, and
// applies the policy's namespace rules, if any: a denied CONNECT becomes
// the denial CONNECT, and any other packet to a namespace the session's
// user may no longer use (a role withdrawn, a rule added by a reload)
// becomes that namespace's DISCONNECT, once: withdrawn(ns) says whether
// it is the first (the client is then told too); later ones are dropped
// (nil). It returns the packet read and the one to forward.
func (h *Handler) checkPacket(pol *policy, client security.Client, w who, p []byte, binary bool, withdrawn func(ns string) (first bool)) (socketio.Packet, []byte, error) {
	pkt, err := socketio.Read(p, binary)
	if err != nil {
		security.LogClient(h.security, "socketio_proxy", security.MalformedRequest, err.Error(), client, security.Fields{})
		return pkt, nil, errMalformedPacket{err}
	}
	if pkt.Kind != socketio.Message || pkt.Type == socketio.Disconnect {
		return pkt, p, nil
	}
	if (pkt.Type == socketio.BinaryEvent || pkt.Type == socketio.BinaryAck) && pkt.Attachments == 0 {
		security.LogClient(h.security, "socketio_proxy", security.MalformedRequest, errNoAttachments.Error(), client, security.Fields{})
		return pkt, nil, errMalformedPacket{errNoAttachments}
	}
	ns := string(pkt.Namespace)
	if pkt.Type != socketio.Connect {
		if !pol.hasRules() {
			return pkt, p, nil
		}
		who := w.recent()
		d := pol.admit(who, ns)
		if d == nil {
			return pkt, p, nil
		}
		if !withdrawn(ns) {
			return pkt, nil, nil
		}
		h.logWithdrawn(d, who, client)
		return pkt, disconnectPacket(ns), nil
	}
	if !pol.hasRules() && !strings.HasPrefix(ns, denialPrefix) {
		return pkt, p, nil
	}
	who := w.current()
	d := pol.admit(who, ns)
	if d == nil {
		return pkt, p, nil
	}
	security.Refused(security.ReasonNamespace)
	security.LogClient(h.security, "socketio_proxy", security.NamespaceDenied, d.reason, client,
		security.Fields{UserID: who.UserID, Namespace: d.Namespace})
	return pkt, d.Connect(), nil
}

// logWithdrawn counts and logs a namespace taken from a live session.
func (h *Handler) logWithdrawn(d *denial, id identity.Identity, client security.Client) {
	security.Refused(security.ReasonNamespace)
	security.LogClient(h.security, "socketio_proxy", security.NamespaceDenied, d.reason+"; withdrawn from a live session",
		client, security.Fields{UserID: id.UserID, Namespace: d.Namespace})
}

// checkPayload checks every packet of a polling body as checkPacket does,
// following the attachments python-socketio awaits (att, carried from the
// session's earlier bodies; the caller keeps it once the worker took the
// body), and returns the body to forward and the DISCONNECTs owed to the
// client.
func (h *Handler) checkPayload(pol *policy, client security.Client, id identity.Identity, body []byte, att *attachments) (out []byte, owed [][]byte, err error) {
	var told []string
	withdrawn := func(ns string) bool {
		if slices.Contains(told, ns) {
			return false
		}
		told = append(told, ns)
		owed = append(owed, disconnectPacket(ns))
		return true
	}
	parts := make([][]byte, 0, 4)
	changed := false
	err = engineio.Packets(body, func(p []byte) error {
		var attachment bool
		if counts(p, false) {
			var drop bool
			if drop, attachment = att.next(); drop {
				changed = true
				return nil
			}
		}
		// Checked as a packet even where python takes it as an
		// attachment: that is only stricter.
		pkt, q, err := h.checkPacket(pol, client, requestIdentity{id}, p, false, withdrawn)
		if err != nil {
			return err
		}
		same := q != nil && len(q) == len(p) && &q[0] == &p[0]
		if !attachment {
			att.read(pkt, !same)
		}
		if !same {
			changed = true
		}
		if q != nil {
			parts = append(parts, q)
		}
		return nil
	})
	if err != nil || !changed {
		return body, owed, err
	}
	return bytes.Join(parts, []byte{engineio.RecordSeparator}), owed, nil
}

// fixDenialReplies turns the worker's answers to denial CONNECTs in a
// polling response into the clients' CONNECT_ERRORs.
func fixDenialReplies(body []byte) []byte {
	if !bytes.Contains(body, []byte(denialPrefix)) {
		return body
	}
	out := make([]byte, 0, len(body))
	_ = engineio.Packets(body, func(p []byte) error {
		if len(out) > 0 {
			out = append(out, engineio.RecordSeparator)
		}
		if ce, ok := socketio.DenialConnectError(p); ok {
			p = ce
		}
		out = append(out, p...)
		return nil
	})
	return out
}
