package socketio

// TEMPORARY until the rproto branch lands.

import (
	"bytes"
	"encoding/json"
	"errors"
)

func splitHead(p []byte) (head, data []byte) {
	i := bytes.IndexAny(p, "[{")
	if i < 0 {
		return p, nil
	}
	return p[:i], p[i:]
}

func WithPid(p []byte, pid string) ([]byte, error) {
	head, data := splitHead(p)
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	m["pid"], _ = json.Marshal(pid)
	js, _ := json.Marshal(m)
	return append(append([]byte(nil), head...), js...), nil
}

func WithOffset(p []byte, offset string) ([]byte, error) {
	head, data := splitHead(p)
	data = bytes.TrimRight(data, " \t\r\n")
	if len(data) < 2 || data[len(data)-1] != ']' {
		return nil, errors.New("not an array")
	}
	off, _ := json.Marshal(offset)
	out := append([]byte(nil), head...)
	inner := bytes.TrimSpace(data[1 : len(data)-1])
	out = append(out, '[')
	out = append(out, inner...)
	if len(inner) > 0 {
		out = append(out, ',')
	}
	out = append(out, off...)
	return append(out, ']'), nil
}

func RecoveryOf(p []byte) (pid, offset string, stripped []byte, found bool, err error) {
	head, data := splitHead(p)
	if len(data) == 0 {
		return "", "", p, false, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return "", "", p, false, nil
	}
	raw, ok := m["pid"]
	if !ok {
		return "", "", p, false, nil
	}
	if err := json.Unmarshal(raw, &pid); err != nil {
		return "", "", nil, false, err
	}
	if o, ok := m["offset"]; ok {
		_ = json.Unmarshal(o, &offset)
	}
	delete(m, "pid")
	delete(m, "offset")
	out := append([]byte(nil), head...)
	if len(m) > 0 {
		js, _ := json.Marshal(m)
		out = append(out, js...)
	}
	return pid, offset, out, true, nil
}
