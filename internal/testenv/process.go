package testenv

import (
	"bytes"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// process is a started component, killed with its whole process group.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *SyncBuffer
	done chan struct{} // closed once the process has been waited for
	kill func()
}

// start runs cmd in a new process group and registers its cleanup: kill
// the group, then log its output if the test failed.
func start(t testing.TB, name string, cmd *exec.Cmd) *process {
	t.Helper()
	VerifyNoLeaks(t)
	p := &process{name: name, cmd: cmd, out: &SyncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// Kills the child if the test binary dies before its cleanups run
		// (a panic, go test -timeout).
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: starting %s: %v", name, err)
	}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	p.kill = sync.OnceFunc(func() {
		// The negative pid signals the group: the process and its children.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	})
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.out.String())
		}
	})
	return p
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitReady polls ready until it returns nil, failing the test when the
// process exits or the deadline passes first.
func (p *process) waitReady(t testing.TB, timeout time.Duration, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ready()
		if err == nil {
			return
		}
		if p.exited() {
			t.Fatalf("testenv: %s exited before it was ready (%v); last check: %v\n%s",
				p.name, p.cmd.ProcessState, err, p.out.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: %s not ready after %v: %v\n%s", p.name, timeout, err, p.out.String())
		}
		select {
		case <-tick.C:
		case <-p.done:
		}
	}
}

// SyncBuffer collects a process's stdout and stderr, safe for their
// concurrent writes; the test reads it while the process is still
// writing.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
