package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// procs is every process the benchmark started; stopAll ends the ones
// still running, whatever made the benchmark stop.
type procs struct {
	mu   sync.Mutex
	list []*proc
}

// proc is one started process, in its own process group so that stopping
// it also stops its children (nginx's worker).
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string // file with its stderr (and stdout, unless piped)
	done chan struct{}
	stop func()
}

// start runs cmd with its output in logPath. With pipeStdout, the caller
// reads stdout itself through the returned reader.
func (ps *procs) start(name, logPath string, cmd *exec.Cmd, pipeStdout bool) (*proc, io.Reader, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, nil, err
	}
	defer logf.Close()
	cmd.Stderr = logf
	var stdout io.Reader
	if pipeStdout {
		if stdout, err = cmd.StdoutPipe(); err != nil {
			return nil, nil, err
		}
	} else {
		cmd.Stdout = logf
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// Ends the child if the driver dies without running its cleanup.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	p.stop = sync.OnceFunc(func() {
		// The negative pid signals the whole group. TERM first, so that
		// nginx's master takes its worker down; KILL if it lingers.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		// A worker that outlived its master is still in the group.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	})
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	return p, stdout, nil
}

func (ps *procs) stopAll() {
	ps.mu.Lock()
	list := ps.list
	ps.list = nil
	ps.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].stop()
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tail is the end of the process's log, for error messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// waitListening waits until addr accepts TCP connections.
func (p *proc) waitListening(ctx context.Context, addr string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited before listening on %s: %v\n%s", p.name, addr, p.cmd.ProcessState, p.tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening on %s after 15s\n%s", p.name, addr, p.tail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// lines delivers a process's stdout line by line.
func lines(r io.Reader) <-chan string {
	ch := make(chan string)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch
}

// nextLine waits for p's next stdout line.
func nextLine(ctx context.Context, p *proc, ch <-chan string, timeout time.Duration) (string, error) {
	select {
	case l, ok := <-ch:
		if !ok {
			<-p.done
			return "", fmt.Errorf("%s exited (%v) without answering\n%s", p.name, p.cmd.ProcessState, p.tail())
		}
		return l, nil
	case <-time.After(timeout):
		return "", fmt.Errorf("%s did not answer within %v\n%s", p.name, timeout, p.tail())
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// The proxy's footprint, read from /proc: for nginx the master and its
// workers, for the others the one process.

// pids returns p's pid and, with children, the pids of its direct
// children.
func pids(p *proc, children bool) ([]int, error) {
	out := []int{p.pid()}
	if !children {
		return out, nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := procStat(pid)
		if err != nil {
			continue // exited meanwhile
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == p.pid() {
			out = append(out, pid)
		}
	}
	return out, nil
}

// procStat returns the fields of /proc/<pid>/stat after the command name,
// so that f[0] is the state (field 3 of proc(5)).
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	return strings.Fields(s[i+1:]), nil
}

// cpuTicks is utime+stime of the processes, in clock ticks.
func cpuTicks(ps []int) (int64, error) {
	var sum int64
	for _, pid := range ps {
		f, err := procStat(pid)
		if err != nil {
			return 0, err
		}
		// utime and stime are fields 14 and 15 of proc(5).
		u, err1 := strconv.ParseInt(f[11], 10, 64)
		s, err2 := strconv.ParseInt(f[12], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		sum += u + s
	}
	return sum, nil
}

// rssKB is the sum of the processes' VmRSS.
func rssKB(ps []int) (int64, error) { return statusKB(ps, "VmRSS:") }

// rssFileKB is the file-backed part of rssKB's figure (RssFile): pages of
// the programs' binaries and libraries read in, not memory the proxies
// hold per connection. A proxy's first requests of a kind page in the
// code that serves them once, whatever their number.
func rssFileKB(ps []int) (int64, error) { return statusKB(ps, "RssFile:") }

// statusKB sums a kB field of /proc/<pid>/status over ps.
func statusKB(ps []int, field string) (int64, error) {
	var sum int64
	for _, pid := range ps {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
		if err != nil {
			return 0, err
		}
		found := false
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, field); ok {
				kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				if err != nil {
					return 0, fmt.Errorf("/proc/%d/status: %w", pid, err)
				}
				sum += kb
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("/proc/%d/status has no %s", pid, strings.TrimSuffix(field, ":"))
		}
	}
	return sum, nil
}

// clockTicks is the kernel's USER_HZ, the unit of utime and stime.
func clockTicks() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return 100
}
