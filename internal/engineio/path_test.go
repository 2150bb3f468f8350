package engineio

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestWorkerPathIsWhatEventletHandsTheApp(t *testing.T) {
	for in, want := range map[string]string{
		"/socket.io/":    "/socket.io/",
		"//socket.io/":   "/socket.io/",
		"///socket.io/x": "/socket.io/x",
		"/%2Fsocket.io/": "//socket.io/", // decoded after the reduction
		"/socket.io//":   "/socket.io//",
		"/a%3Fb":         "/a?b",
		"//":             "/",
	} {
		assert.Equal(t, want, WorkerPath(in), in)
	}
}
