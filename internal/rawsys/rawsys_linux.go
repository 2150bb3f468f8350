//go:build linux

// Package rawsys makes the system calls of the edge's event loops that
// never block (reads and writes on non-blocking sockets, epoll_wait with
// a zero timeout, epoll_ctl) without telling the Go scheduler that a
// system call began and ended.
//
// syscall.Syscall brackets each call with entersyscall and exitsyscall,
// made for calls that may block: the goroutine's P is put up for other
// threads to take, and when the runtime's monitor thread (sysmon) is
// asleep, as it is whenever the process has been idle for a while, each
// call wakes it with a futex so that it can hand the P on should the
// call block. An event loop serving a frame or a request at a time,
// with the process idle in between, paid that wake-up (and sysmon's
// return to sleep: two more context switches) on nearly every read and
// write: runtime.futex under entersyscall was 9% of the relay's CPU
// profile in the echo benchmark. syscall.RawSyscall makes the call alone,
// which is what these calls need: none of them waits.
//
// Only calls that cannot block may go through here: a thread in a raw
// system call holds its P, and the garbage collector's stop-the-world
// waits for it to return.
package rawsys

import (
	"syscall"
	"unsafe"
)

// Read is read(2) on a non-blocking descriptor.
func Read(fd int, b []byte) (int, error) { return rw(syscall.SYS_READ, fd, b) }

// Write is write(2) on a non-blocking descriptor.
func Write(fd int, b []byte) (int, error) { return rw(syscall.SYS_WRITE, fd, b) }

func rw(trap uintptr, fd int, b []byte) (int, error) {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	n, _, errno := syscall.RawSyscall(trap, uintptr(fd), uintptr(p), uintptr(len(b)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// Writev is writev(2) on a non-blocking descriptor, of iov[:n].
func Writev(fd int, iov []syscall.Iovec) (int, error) {
	n, _, errno := syscall.RawSyscall(syscall.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// Peek is recv(2) with MSG_PEEK|MSG_DONTWAIT.
func Peek(fd int, b []byte) (int, error) {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// EpollPoll is epoll_wait(2) with a zero timeout: it returns the events
// at hand and never waits. (epoll_pwait with no signal mask: every
// architecture has it.)
func EpollPoll(epfd int, events []syscall.EpollEvent) (int, error) {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// EpollCtl is epoll_ctl(2).
func EpollCtl(epfd, op, fd int, ev *syscall.EpollEvent) error {
	_, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
