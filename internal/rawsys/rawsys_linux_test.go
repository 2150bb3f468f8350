//go:build linux

package rawsys

import (
	"syscall"
	"testing"
)

// The calls behave as the syscall package's: bytes, EAGAIN as
// syscall.EAGAIN (callers compare with ==), events for ready
// descriptors, and a closed peer as a zero read.
func TestCallsOnANonBlockingSocketPair(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := fds[0], fds[1]
	defer syscall.Close(a)
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(epfd)

	var buf [16]byte
	if _, err := Read(b, buf[:]); err != syscall.EAGAIN {
		t.Fatalf("read of an empty socket: %v, want EAGAIN", err)
	}
	if _, err := Peek(b, buf[:]); err != syscall.EAGAIN {
		t.Fatalf("peek of an empty socket: %v, want EAGAIN", err)
	}
	if err := EpollCtl(epfd, syscall.EPOLL_CTL_ADD, b, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(b)}); err != nil {
		t.Fatal(err)
	}
	var evs [4]syscall.EpollEvent
	if n, err := EpollPoll(epfd, evs[:]); n != 0 || err != nil {
		t.Fatalf("poll with nothing ready: %d %v", n, err)
	}

	if n, err := Write(a, []byte("he")); n != 2 || err != nil {
		t.Fatalf("write: %d %v", n, err)
	}
	iov := make([]syscall.Iovec, 2)
	for i, s := range [][]byte{[]byte("ll"), []byte("o")} {
		iov[i].Base = &s[0]
		iov[i].SetLen(len(s))
	}
	if n, err := Writev(a, iov); n != 3 || err != nil {
		t.Fatalf("writev: %d %v", n, err)
	}
	if n, err := EpollPoll(epfd, evs[:]); n != 1 || err != nil || evs[0].Fd != int32(b) || evs[0].Events&syscall.EPOLLIN == 0 {
		t.Fatalf("poll with b readable: %d %v %+v", n, err, evs[0])
	}
	if n, err := Peek(b, buf[:]); n != 5 || err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("peek: %d %v %q", n, err, buf[:n])
	}
	if n, err := Read(b, buf[:]); n != 5 || err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read: %d %v %q", n, err, buf[:n])
	}
	if err := EpollCtl(epfd, syscall.EPOLL_CTL_DEL, b, nil); err != nil {
		t.Fatal(err)
	}
	if err := EpollCtl(epfd, syscall.EPOLL_CTL_DEL, b, nil); err != syscall.ENOENT {
		t.Fatalf("second delete: %v, want ENOENT", err)
	}
	syscall.Close(b)
	if _, err := Write(a, []byte("x")); err != syscall.EPIPE {
		t.Fatalf("write to a closed peer: %v, want EPIPE", err)
	}
}
