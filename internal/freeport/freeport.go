// Package freeport hands out free loopback TCP ports to the processes a
// test or benchmark starts.
package freeport

import (
	"errors"
	"net"
	"sync"
)

var handedOut sync.Map // port → true

// Get asks the kernel for a free loopback port, never the same one twice
// in one process: a Flask worker takes seconds to import eventlet and
// bind, and another caller asking meanwhile could be given its port.
// Another process may still take the port before it is bound; the
// program that binds it then fails to start and says so.
func Get() (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if _, taken := handedOut.LoadOrStore(port, true); !taken {
			return port, nil
		}
	}
	return 0, errors.New("freeport: no free port that was not handed out before")
}
