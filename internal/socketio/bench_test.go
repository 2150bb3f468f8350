package socketio

import "testing"

// Read runs on every message a client sends.

func BenchmarkReadEvent(b *testing.B) {
	benchmarkRead(b, `42/chat,["message",{"room":"lobby","text":"hello, world"}]`)
}

func BenchmarkReadEventWithAck(b *testing.B) {
	benchmarkRead(b, `4217["echo",{"n":1}]`)
}

func BenchmarkReadConnect(b *testing.B) {
	benchmarkRead(b, `40/admin,{"token":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"}`)
}

func benchmarkRead(b *testing.B, packet string) {
	p := []byte(packet)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Read(p, false); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeConnectError(b *testing.B) {
	data := map[string]any{"code": 403}
	b.ReportAllocs()
	for b.Loop() {
		EncodeConnectError("/admin", "forbidden", data)
	}
}

// BenchmarkReadHead is what the relay spends on every client message it
// streams: ReadHead of the first 32 bytes.
func BenchmarkReadHead(b *testing.B) {
	p := []byte(`42["message",{"room":"lobby","text":"hello, world"}]`)[:32]
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := ReadHead(p); !ok {
			b.Fatal("undecided")
		}
	}
}

// WithOffset runs on every event a worker sends to a client that can
// recover its connection.
func BenchmarkWithOffset(b *testing.B) {
	p := []byte(`42/chat,["message",{"room":"lobby","text":"hello, world"}]`)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := WithOffset(p, "MzE0MTU5MjY1MzU4OTc5"); err != nil {
			b.Fatal(err)
		}
	}
}
