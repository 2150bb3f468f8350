package socketio

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
)

// A CONNECT the edge refuses is not forwarded as it was, and yet the
// client must receive its CONNECT_ERROR on its own transport: on polling,
// that is in the response to a long-poll GET the worker is holding,
// possibly at another edge. So the edge forwards instead a CONNECT to a
// namespace that carries the denial, under a prefix no application uses:
//
//	40/.flaskedge-denied/<base64url of {"n":ns,"m":message,"d":data}>,
//
// python-socketio answers it at once, in order with everything else it
// sends, with "44/.flaskedge-denied/...,"Unable to connect"", and
// whichever edge relays that answer turns it into the client's
// CONNECT_ERROR for the namespace it asked for. No edge keeps state, and
// the worker never connects the client to the namespace it was denied.
// (An app that accepts every namespace, python-socketio's
// namespaces='*', connects the marker namespace instead: "40/.flaskedge-
// denied/...,{"sid":...}". The client is still told CONNECT_ERROR, and
// the marker namespace sees no traffic.)

// DenialPrefix begins the namespace of a denial CONNECT. No client may
// connect to a namespace under it.
const DenialPrefix = "/.flaskedge-denied/"

// Denial is a refused CONNECT, and what the client is told.
type Denial struct {
	Namespace string         `json:"n"`
	Message   string         `json:"m"`
	Data      map[string]any `json:"d"`
}

// Connect is the CONNECT the edge forwards to the worker in place of the
// refused one.
func (d Denial) Connect() []byte {
	js, _ := json.Marshal(d)
	b := make([]byte, 0, 3+len(DenialPrefix)+base64.RawURLEncoding.EncodedLen(len(js)))
	b = append(b, "40"...)
	b = append(b, DenialPrefix...)
	b = base64.RawURLEncoding.AppendEncode(b, js)
	return append(b, ',')
}

// IsDenialReply reports whether a worker's message (or its first
// 2+len(DenialPrefix) bytes) is its answer to a denial CONNECT: a
// CONNECT_ERROR or a CONNECT reply to the marker namespace. It is the one
// test for the marker; a relay that peeks at fewer bytes cannot tell.
func IsDenialReply(p []byte) bool {
	return len(p) >= 2+len(DenialPrefix) && p[0] == '4' && (p[1] == '4' || p[1] == '0') &&
		string(p[2:2+len(DenialPrefix)]) == DenialPrefix
}

// DenialConnectError turns a worker's whole answer to a denial CONNECT
// into the client's CONNECT_ERROR for the namespace it was refused. ok is
// false when p is no such answer, or its marker is not one the edge
// wrote.
func DenialConnectError(p []byte) (connectError []byte, ok bool) {
	if !IsDenialReply(p) {
		return nil, false
	}
	enc, _, _ := bytes.Cut(p[2+len(DenialPrefix):], []byte{','})
	js, err := base64.RawURLEncoding.DecodeString(string(enc))
	if err != nil {
		return nil, false
	}
	var d Denial
	if err := json.Unmarshal(js, &d); err != nil {
		return nil, false
	}
	if !strings.HasPrefix(d.Namespace, "/") || strings.ContainsAny(d.Namespace, ",") {
		return nil, false
	}
	return EncodeConnectError(d.Namespace, d.Message, d.Data), true
}
