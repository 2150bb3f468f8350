package testenv

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// StartRedis starts a throwaway redis-server on a fresh loopback port, with
// persistence off, and returns its address "127.0.0.1:PORT" once it answers
// PING. Workers take it as FlaskOptions.RedisURL = "redis://" + addr.
func StartRedis(t testing.TB) (addr string) {
	t.Helper()
	RequireRedis(t)
	port := FreePort(t)
	addr = "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command("redis-server",
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", t.TempDir(),
	)
	p := start(t, "redis-server "+addr, cmd)
	p.waitReady(t, 10*time.Second, func() error { return ping(addr) })
	return addr
}

func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING: want +PONG, got %q", line)
	}
	return nil
}

// subscribed reports whether the Redis client named name has a
// subscription, going by CLIENT LIST.
func subscribed(addr, name string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("CLIENT LIST\r\n")); err != nil {
		return err
	}
	r := bufio.NewReader(conn)
	header, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(header, "$")))
	if !strings.HasPrefix(header, "$") || err != nil {
		return fmt.Errorf("CLIENT LIST: unexpected reply %q", header)
	}
	list := make([]byte, n)
	if _, err := io.ReadFull(r, list); err != nil {
		return err
	}
	for _, client := range strings.Split(string(list), "\n") {
		fields := " " + client + " "
		if strings.Contains(fields, " name="+name+" ") && !strings.Contains(fields, " sub=0 ") {
			return nil
		}
	}
	return fmt.Errorf("redis client %s has not subscribed yet", name)
}
