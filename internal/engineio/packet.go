package engineio

import (
	"bytes"
	"encoding/json"
	"errors"
)

// PacketType is the first character of an Engine.IO packet.
type PacketType byte

// The packet types of Engine.IO v4.
const (
	Open    PacketType = '0'
	Close   PacketType = '1'
	Ping    PacketType = '2'
	Pong    PacketType = '3'
	Message PacketType = '4'
	Upgrade PacketType = '5'
	Noop    PacketType = '6'
)

// RecordSeparator separates the packets of a polling payload.
const RecordSeparator = '\x1e'

// ErrEmptyPacket is a polling payload record or WebSocket frame with no
// packet type.
var ErrEmptyPacket = errors.New("engineio: empty packet")

// Packets calls fn with each packet of a polling payload, in order, as a
// slice of payload (no copy). A binary packet, written in a payload as 'b'
// and base64, is passed as written. It stops at the first error fn
// returns. An empty record is an error: python-engineio refuses it too.
func Packets(payload []byte, fn func(packet []byte) error) error {
	for {
		i := bytes.IndexByte(payload, RecordSeparator)
		rec := payload
		if i >= 0 {
			rec = payload[:i]
		}
		if len(rec) == 0 {
			return ErrEmptyPacket
		}
		if err := fn(rec); err != nil {
			return err
		}
		if i < 0 {
			return nil
		}
		payload = payload[i+1:]
	}
}

// OpenPacket is the body of the open packet a server sends first.
type OpenPacket struct {
	SID          string   `json:"sid"`
	Upgrades     []string `json:"upgrades"`
	PingInterval int      `json:"pingInterval"`
	PingTimeout  int      `json:"pingTimeout"`
	MaxPayload   int      `json:"maxPayload,omitempty"`
}

// ParseOpen reads an open packet ('0' followed by JSON).
func ParseOpen(packet []byte) (OpenPacket, error) {
	var o OpenPacket
	if len(packet) == 0 || PacketType(packet[0]) != Open {
		return o, errors.New("engineio: not an open packet")
	}
	if err := json.Unmarshal(packet[1:], &o); err != nil {
		return o, errors.New("engineio: malformed open packet: " + err.Error())
	}
	if !validSID(o.SID) {
		return o, errors.New("engineio: open packet carries no valid sid")
	}
	return o, nil
}

// ReplaceOpenSID returns the open packet with its sid replaced, keeping
// every other field the worker sent, and the packet as parsed.
func ReplaceOpenSID(packet []byte, sid string) ([]byte, OpenPacket, error) {
	o, err := ParseOpen(packet)
	if err != nil {
		return nil, o, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(packet[1:], &fields); err != nil {
		return nil, o, err
	}
	fields["sid"], _ = json.Marshal(sid)
	body, err := json.Marshal(fields)
	if err != nil {
		return nil, o, err
	}
	return append([]byte{byte(Open)}, body...), o, nil
}
