//go:build linux

package park

import (
	"bytes"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// pair returns the two ends of a loopback TCP connection.
func pair(t *testing.T) (server, client net.Conn) { return testenv.TCPPair(t) }

func running() bool {
	watcher.mu.Lock()
	defer watcher.mu.Unlock()
	return watcher.running
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestAParkedConnectionIsHandedBackWhenItsClientSends(t *testing.T) {
	server, client := pair(t)
	got := make(chan net.Conn, 1)
	c, ok := Park(server, func(c *Conn) { got <- c.Conn() })
	require.True(t, ok)
	require.Equal(t, 1, Parked())
	select {
	case <-got:
		t.Fatal("handed back before the client sent anything")
	case <-time.After(50 * time.Millisecond):
	}
	_, err := client.Write([]byte("GET / HTTP/1.1\r\n"))
	require.NoError(t, err)
	conn := <-got
	require.Same(t, server, conn)
	// Nothing was read: the bytes are the next reader's.
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	require.NoError(t, err)
	require.Equal(t, "GET / HTTP/1.1\r\n", string(buf[:n]))
	require.False(t, c.Unpark(), "handed back already")
	waitFor(t, "the watcher's goroutine to end", func() bool { return !running() })
}

func TestBytesSentBeforeParkingAreReported(t *testing.T) {
	server, client := pair(t)
	_, err := client.Write([]byte("x"))
	require.NoError(t, err)
	got := make(chan net.Conn, 1)
	_, ok := Park(server, func(c *Conn) { got <- c.Conn() })
	require.True(t, ok)
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("bytes already there were not reported")
	}
}

func TestAHangUpHandsTheConnectionBack(t *testing.T) {
	server, client := pair(t)
	got := make(chan net.Conn, 1)
	_, ok := Park(server, func(c *Conn) { got <- c.Conn() })
	require.True(t, ok)
	client.Close()
	conn := <-got
	_, err := conn.Read(make([]byte, 1))
	require.Error(t, err)
}

func TestUnparkedConnectionsAreNeverHandedBack(t *testing.T) {
	var parked []*Conn
	var clients []net.Conn
	called := make(chan struct{}, 100)
	for range 20 {
		server, client := pair(t)
		c, ok := Park(server, func(*Conn) { called <- struct{}{} })
		require.True(t, ok)
		parked = append(parked, c)
		clients = append(clients, client)
	}
	require.Equal(t, 20, Parked())
	for _, c := range parked {
		require.True(t, c.Unpark())
		require.False(t, c.Unpark())
	}
	require.Equal(t, 0, Parked())
	for _, cl := range clients {
		_, _ = cl.Write([]byte("x"))
	}
	waitFor(t, "the watcher's goroutine to end", func() bool { return !running() })
	select {
	case <-called:
		t.Fatal("an unparked connection was handed back")
	case <-time.After(50 * time.Millisecond):
	}
}

func TestOnlyPlainTCPIsParked(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	_, ok := Park(a, func(*Conn) {})
	require.False(t, ok)
}

func TestParkAndUnparkRaceHandsBackAtMostOnce(t *testing.T) {
	for range 200 {
		server, client := pair(t)
		calls := make(chan struct{}, 2)
		c, ok := Park(server, func(*Conn) { calls <- struct{}{} })
		require.True(t, ok)
		go func() { _, _ = client.Write([]byte("x")) }()
		unparked := c.Unpark()
		if unparked {
			select {
			case <-calls:
				t.Fatal("handed back after Unpark won")
			case <-time.After(time.Millisecond):
			}
		} else {
			<-calls
		}
	}
	waitFor(t, "nothing parked", func() bool { return Parked() == 0 })
}

// A woken connection is served by a waiting worker when there is one:
// the goroutine (and its grown stack) is reused, not made anew.
func TestWokenConnectionsReuseAWaitingWorker(t *testing.T) {
	waitFor(t, "no worker left from other tests", sweepNow)
	var ids []uint64
	for range 2 {
		ran := make(chan uint64, 1)
		server, client := pair(t)
		_, ok := Park(server, func(*Conn) { ran <- goid() })
		require.True(t, ok)
		_, err := client.Write([]byte("x"))
		require.NoError(t, err)
		ids = append(ids, <-ran)
		waitFor(t, "the worker to wait", func() bool { return idleWorkers() == 1 })
	}
	assert.Equal(t, ids[0], ids[1], "the second connection ran on the first one's worker")
}

// A burst leaves at most maxIdleWorkers waiting, and they end once idle
// for workerIdle.
func TestIdleWorkersAreBoundedAndEnd(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 2*maxIdleWorkers)
	for range 2 * maxIdleWorkers {
		dispatch(&Conn{ready: func(*Conn) { started <- struct{}{}; <-release }})
	}
	for range 2 * maxIdleWorkers {
		<-started
	}
	close(release)
	waitFor(t, "the burst's workers to finish", func() bool { return idleWorkers() == maxIdleWorkers })
	time.Sleep(10 * time.Millisecond)
	assert.Equal(t, maxIdleWorkers, idleWorkers())
	deadline := time.Now().Add(3 * workerIdle)
	for idleWorkers() > 0 {
		require.False(t, time.Now().After(deadline), "%d workers still wait after %v", idleWorkers(), 3*workerIdle)
		time.Sleep(50 * time.Millisecond)
	}
}

// sweepNow ends every waiting worker, for a test that counts them.
func sweepNow() bool {
	workers.mu.Lock()
	for _, w := range workers.idle {
		w.since = time.Time{}
	}
	workers.mu.Unlock()
	sweepWorkers()
	return idleWorkers() == 0
}

// goid is the calling goroutine's id, from its stack header.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	n, _ := strconv.ParseUint(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	return n
}

// A connection parked again, after its event or after Unpark, is
// watched again: its registration, kept disarmed, is armed anew.
func TestAConnectionParkedAgainIsWatchedAgain(t *testing.T) {
	server, client := pair(t)
	for round := range 3 {
		ran := make(chan struct{}, 1)
		if round == 1 {
			pc, ok := Park(server, func(*Conn) { t.Error("an unparked connection was handed back") })
			require.True(t, ok)
			require.True(t, pc.Unpark())
		}
		_, ok := Park(server, func(*Conn) { ran <- struct{}{} })
		require.True(t, ok)
		select {
		case <-ran:
			t.Fatalf("round %d: handed back before its client sent", round)
		case <-time.After(20 * time.Millisecond):
		}
		_, err := client.Write([]byte{byte(round)})
		require.NoError(t, err)
		select {
		case <-ran:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: not handed back", round)
		}
		b := make([]byte, 1)
		_, err = server.Read(b)
		require.NoError(t, err)
		require.Equal(t, byte(round), b[0])
	}
}

// openFDs counts the process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

// A held connection that waits is put to sleep: its net.Conn closed, its
// socket watched on. Woken by its client's bytes, it is a connection on
// the same socket that reads what was sent and writes back; the client
// never sees it close.
func TestAHeldConnectionSleepsAndWakesWhole(t *testing.T) {
	watcher.once.Do(setup) // its descriptors are not the connection's
	server, client := pair(t)
	fds := openFDs(t)
	got := make(chan net.Conn, 1)
	c, ok := Hold(server, func(c *Conn) { got <- c.Conn() })
	require.True(t, ok)
	waitFor(t, "the connection to sleep", func() bool { return Sleeping() == 1 })
	_, err := server.Write([]byte("x"))
	require.Error(t, err, "the connection it held is closed")
	_, err = client.Write([]byte("GET / HTTP/1.1\r\n"))
	require.NoError(t, err)
	var conn net.Conn
	select {
	case conn = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("a sleeping connection was not handed back when its client sent")
	}
	defer conn.Close()
	assert.Equal(t, 0, Sleeping())
	assert.Equal(t, server.LocalAddr().String(), conn.LocalAddr().String())
	assert.Equal(t, server.RemoteAddr().String(), conn.RemoteAddr().String())
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, "GET / HTTP/1.1\r\n", string(buf[:n]))
	_, err = conn.Write([]byte("HTTP/1.1 200 OK\r\n"))
	require.NoError(t, err)
	n, err = client.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, "HTTP/1.1 200 OK\r\n", string(buf[:n]))
	assert.Same(t, conn, c.Conn(), "woken once")
	assert.Equal(t, fds, openFDs(t), "one descriptor for the socket, as before it slept")
}

// A sleeping connection unparked and closed is closed without waking:
// its client sees the end, and no descriptor is left.
func TestASleepingConnectionClosesWithoutWaking(t *testing.T) {
	watcher.once.Do(setup)
	server, client := pair(t)
	fds := openFDs(t)
	c, ok := Hold(server, func(*Conn) { t.Error("handed back") })
	require.True(t, ok)
	waitFor(t, "the connection to sleep", func() bool { return Sleeping() == 1 })
	require.True(t, c.Unpark())
	require.NoError(t, c.Close())
	assert.Equal(t, 0, Sleeping())
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := client.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF)
	assert.Equal(t, fds-1, openFDs(t))
}

// A sleeping connection's client hanging up hands it back, and the
// woken connection reads the end.
func TestASleepingConnectionsHangUpIsSeen(t *testing.T) {
	server, client := pair(t)
	got := make(chan net.Conn, 1)
	_, ok := Hold(server, func(c *Conn) { got <- c.Conn() })
	require.True(t, ok)
	waitFor(t, "the connection to sleep", func() bool { return Sleeping() == 1 })
	require.NoError(t, client.Close())
	conn := <-got
	defer conn.Close()
	_, err := conn.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF)
}

// A held connection its client keeps busy never sleeps; Park's never do.
func TestOnlyAHeldConnectionThatWaitsSleeps(t *testing.T) {
	server, client := pair(t)
	parked, _ := pair(t)
	got := make(chan *Conn, 1)
	_, ok := Park(parked, func(*Conn) {})
	require.True(t, ok)
	_, ok = Hold(server, func(c *Conn) { got <- c })
	require.True(t, ok)
	_, err := client.Write([]byte("x"))
	require.NoError(t, err)
	c := <-got
	assert.Same(t, server, c.Conn(), "woken before SleepAfter: the same connection")
	before := sweeps.Load()
	waitFor(t, "a sweep", func() bool { return sweeps.Load() > before })
	assert.Equal(t, 0, Sleeping())
}

// A sleeping connection whose client sent and reset at once wakes as a
// connection that has addresses and fails (attack15: a woken socket
// without a peer had no RemoteAddr, and h1serve's use of it crashed the
// edge).
func TestASleepingConnectionResetAsItWakesFailsWithAddresses(t *testing.T) {
	for range 5 {
		server, client := pair(t)
		got := make(chan net.Conn, 1)
		_, ok := Hold(server, func(c *Conn) { got <- c.Conn() })
		require.True(t, ok)
		waitFor(t, "the connection to sleep", func() bool { return Sleeping() >= 1 })
		_, err := client.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
		require.NoError(t, err)
		require.NoError(t, client.(*net.TCPConn).SetLinger(0))
		require.NoError(t, client.Close())
		conn := <-got
		require.NotNil(t, conn.RemoteAddr())
		require.NotNil(t, conn.LocalAddr())
		buf := make([]byte, 64)
		for {
			if _, err := conn.Read(buf); err != nil {
				break
			}
		}
		conn.Close()
	}
}

// The sweep looks at the held connections not yet asleep, not at every
// parked one: a connection that sleeps, or is handed back awake, leaves
// its list; the list is empty once none waits awake.
func TestTheSweepForgetsConnectionsAsleepOrHandedBack(t *testing.T) {
	heldLen := func() int {
		watcher.mu.Lock()
		defer watcher.mu.Unlock()
		return len(watcher.held)
	}
	before := Sleeping()
	var conns []*Conn
	for range 20 {
		server, _ := pair(t)
		c, ok := Hold(server, func(*Conn) {})
		require.True(t, ok)
		conns = append(conns, c)
	}
	// One handed back before it sleeps.
	require.True(t, conns[0].Unpark())
	conns[0].Conn().Close()
	waitFor(t, "19 connections to sleep", func() bool { return Sleeping() == before+19 })
	waitFor(t, "the sweep's list to empty", func() bool { return heldLen() == 0 })

	// Held again after the others sleep: it alone is looked at, and
	// sleeps in its turn.
	server, _ := pair(t)
	c, ok := Hold(server, func(*Conn) {})
	require.True(t, ok)
	require.Equal(t, 1, heldLen())
	waitFor(t, "the last one to sleep", func() bool { return Sleeping() == before+20 })
	waitFor(t, "the sweep's list to empty", func() bool { return heldLen() == 0 })
	for _, c := range append(conns[1:], c) {
		if c.Unpark() {
			require.NoError(t, c.Close())
		}
	}
	assert.Equal(t, before, Sleeping())
}
