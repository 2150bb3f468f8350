package socketioproxy

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestWorkerNamespaceReadsCanonicalPackets(t *testing.T) {
	for _, tc := range []struct {
		in, ns string
		typ    byte
		ok     bool
	}{
		{`42["x"]`, "/", '2', true},
		{`42/admin,["x"]`, "/admin", '2', true},
		{`437[1]`, "/", '3', true},
		{`43/admin,7[1]`, "/admin", '3', true},
		{`451-/admin,["x",{"_placeholder":true,"num":0}]`, "/admin", '5', true},
		{`451-["x"]`, "/", '5', true},
		{`40/admin,{"sid":"x"}`, "/admin", '0', true},
		{`42/admin`, "", 0, false}, // the namespace runs past what was read
		{`45["x"]`, "", 0, false},  // no attachment count
		{`2`, "", 0, false},
		{`47`, "", 0, false},
	} {
		typ, ns, ok := workerNamespace([]byte(tc.in))
		assert.Equal(t, tc.ok, ok, tc.in)
		if tc.ok {
			assert.Equal(t, tc.typ, typ, tc.in)
			assert.Equal(t, tc.ns, ns, tc.in)
		}
	}
}

func FuzzWorkerNamespace(f *testing.F) {
	for _, s := range []string{`42/admin,["x"]`, `451-/a,[]`, `43`, `4`, `42/`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		typ, ns, ok := workerNamespace(p)
		if !ok {
			return
		}
		if typ < '0' || typ > '6' || !strings.HasPrefix(ns, "/") || strings.Contains(ns, ",") {
			t.Fatalf("%q read as type %c namespace %q", p, typ, ns)
		}
	})
}
