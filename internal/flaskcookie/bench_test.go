package flaskcookie

import (
	"testing"
	"time"
)

// go test -run '^$' -bench . -benchmem ./internal/flaskcookie/
func BenchmarkVerify(b *testing.B) {
	for _, name := range []string{"plain", "compressed", "wrong_key", "payload_bit_flipped"} {
		v := vectorByName(b, name)
		ver := v.verifier(b)
		now := time.Unix(v.Now, 0)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, err := ver.Verify(v.Cookie, now)
				if (err == nil) != (v.Expect == "valid") {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerifyAndDecode(b *testing.B) {
	for _, name := range []string{"plain", "compressed", "tagged"} {
		v := vectorByName(b, name)
		ver := v.verifier(b)
		now := time.Unix(v.Now, 0)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				payload, err := ver.Verify(v.Cookie, now)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := Decode(payload, "_user_id", "role"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
