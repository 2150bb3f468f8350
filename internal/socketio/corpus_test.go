package socketio

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"testing"
)

// The corpus: hand-written packets, one JSON object per line, read by
// both the Go tests and testdata/pydecode.py (which documents the format).
const (
	corpusFile = "testdata/corpus.jsonl"
	goldenFile = "testdata/corpus.golden.jsonl"
)

type corpusFrame struct {
	Text   *string `json:"text"`
	B64    *string `json:"b64"`
	Binary bool    `json:"binary"`
}

func (f corpusFrame) bytes(t testing.TB) []byte {
	if f.B64 != nil {
		b, err := base64.StdEncoding.DecodeString(*f.B64)
		if err != nil {
			t.Fatalf("corpus: %v", err)
		}
		return b
	}
	return []byte(*f.Text)
}

type corpusEntry struct {
	Name string `json:"name"`
	corpusFrame
	Frames []corpusFrame `json:"frames"`
	Body   *string       `json:"body"`
}

func (e corpusEntry) frames() []corpusFrame {
	if e.Frames != nil {
		return e.Frames
	}
	return []corpusFrame{e.corpusFrame}
}

// pyFrame is what pydecode.py reports for one packet.
type pyFrame struct {
	B64    string `json:"b64"`
	Binary bool   `json:"binary"`
	EIO    struct {
		Type  *int   `json:"type"`
		Data  string `json:"data"`
		Error string `json:"error"`
	} `json:"eio"`
	Header *struct {
		Type        *int    `json:"type"`
		NS          *string `json:"ns"`
		Attachments int64   `json:"attachments"`
		ID          *string `json:"id"`
		Error       string  `json:"error"`
	} `json:"header"`
	Actions [][]any `json:"actions"`
	Error   string  `json:"error"`
}

type pyEntry struct {
	Name    string    `json:"name"`
	Frames  []pyFrame `json:"frames"`
	BodyB64 string    `json:"body_b64"`
	Actions [][]any   `json:"actions"`
	Error   string    `json:"error"`
}

func readJSONLines[T any](t testing.TB, data []byte) []T {
	t.Helper()
	var out []T
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("line %d: %v", len(out)+1, err)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func loadCorpus(t testing.TB) []corpusEntry {
	t.Helper()
	data, err := os.ReadFile(corpusFile)
	if err != nil {
		t.Fatal(err)
	}
	return readJSONLines[corpusEntry](t, data)
}
