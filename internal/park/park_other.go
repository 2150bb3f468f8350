//go:build !linux

package park

import "net"

// Park reports false: connections are parked only on Linux.
func Park(net.Conn, func(*Conn)) (*Conn, bool) { return nil, false }

// Hold reports false: connections are parked only on Linux.
func Hold(net.Conn, func(*Conn)) (*Conn, bool) { return nil, false }

func wake(c *Conn) net.Conn { return c.conn }

func closeSleeping(c *Conn) error { return nil }

// Unpark reports false: nothing is parked.
func (c *Conn) Unpark() bool { return false }

// Parked is 0: nothing is parked.
func Parked() int { return 0 }

// HungUp reports false: hang-ups are watched only on Linux.
func HungUp(net.Conn) bool { return false }

// WakeErr is nil: connections never sleep but on Linux.
func WakeErr(net.Conn) error { return nil }

// Sleeping is 0: connections never sleep but on Linux.
func Sleeping() int { return 0 }
