package testenv_test

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// echoServer answers every line with "<name> <line>" until the test ends.
func echoServer(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	conns := make(chan net.Conn, 16)
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
			go func() {
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if _, err := c.Write([]byte(name + " " + sc.Text() + "\n")); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		close(conns)
		for c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

// roundTrip sends line over c and returns the answer, or the error.
func roundTrip(c net.Conn, line string) (string, error) {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	answer, err := bufio.NewReader(c).ReadString('\n')
	return answer, err
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestNetCutClosesLiveConnectionsAndRefusesNewOnesUntilRestored(t *testing.T) {
	n := testenv.StartNetCut(t, echoServer(t, "a"))

	live := dial(t, n.Addr)
	answer, err := roundTrip(live, "hello")
	require.NoError(t, err)
	assert.Equal(t, "a hello\n", answer)

	n.Cut()
	_, err = roundTrip(live, "after the cut")
	assert.Error(t, err, "a connection live at the cut must end")
	_, err = roundTrip(dial(t, n.Addr), "during the cut")
	assert.Error(t, err, "a connection made during the cut must end at once")

	n.Restore()
	answer, err = roundTrip(dial(t, n.Addr), "restored")
	require.NoError(t, err)
	assert.Equal(t, "a restored\n", answer)
}

func TestNetCutRetargetSendsNewConnectionsElsewhere(t *testing.T) {
	n := testenv.StartNetCut(t, echoServer(t, "a"))
	before := dial(t, n.Addr)
	_, err := roundTrip(before, "x")
	require.NoError(t, err)

	n.Retarget(echoServer(t, "b"))
	answer, err := roundTrip(dial(t, n.Addr), "new")
	require.NoError(t, err)
	assert.Equal(t, "b new\n", answer)
	answer, err = roundTrip(before, "old")
	require.NoError(t, err)
	assert.Equal(t, "a old\n", answer, "a live connection keeps its target")
}
