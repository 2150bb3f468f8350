package socketioproxy_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// A long-poll the edge parks is answered after its handler returned, so
// Caddy's access log line for it (written as the handler returns) has
// status 0 and the time it took to park. The line says so: the field
// socketio_poll tells an operator the answer comes later (most of a
// session's GETs are parked, if only for the milliseconds the worker
// takes). A GET served to the end (the handshake) has its status and no
// such field.
func TestAccessLogSaysAPollIsParked(t *testing.T) {
	worker := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1", SecretKey: advSecret})
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	edge := testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%s {
	bind 127.0.0.1
	log {
		output stderr
		format json
	}
	socketio_proxy {
		to %s
	}
}
`, addr, worker.Addr)), addr)
	sid := atk11OpenOn(t, edge, addr, "")
	c := atk11Dial(t, addr)
	defer c.c.Close()
	require.NoError(t, c.raw("GET "+atk11Path+"&sid="+sid+" HTTP/1.1\r\nHost: "+addr+"\r\n\r\n"))
	atk11Waiting(t, edge, 1)

	// accessLines are the access log's lines for the session's GETs.
	type line struct {
		Msg     string `json:"msg"`
		Status  int    `json:"status"`
		Parked  string `json:"socketio_poll"`
		Request struct {
			URI    string `json:"uri"`
			Method string `json:"method"`
		} `json:"request"`
	}
	accessLines := func() []line {
		var out []line
		for _, l := range strings.Split(edge.Output(), "\n") {
			var x line
			if json.Unmarshal([]byte(l), &x) == nil && x.Msg == "handled request" && x.Request.Method == "GET" {
				out = append(out, x)
			}
		}
		return out
	}
	// The session's GETs: the one that returned the CONNECT's answer
	// (parked too, for the few milliseconds the worker took) and the
	// one waiting now.
	var parked []line
	require.Eventually(t, func() bool {
		parked = parked[:0]
		for _, l := range accessLines() {
			if l.Parked != "" {
				parked = append(parked, l)
			}
		}
		return len(parked) == 2
	}, 10*time.Second, 10*time.Millisecond, "the access log's lines for the session's two GETs:\n%s", edge.Output())
	for _, l := range parked {
		assert.Contains(t, l.Request.URI, "sid="+sid)
		assert.Zero(t, l.Status)
		assert.Contains(t, l.Parked, "answer is written later")
	}
	handshakes := 0
	for _, l := range accessLines() {
		if !strings.Contains(l.Request.URI, "sid=") {
			handshakes++
			assert.Equal(t, 200, l.Status, "the handshake's line")
			assert.Empty(t, l.Parked, "the handshake's line")
		}
	}
	assert.Equal(t, 1, handshakes)
}
