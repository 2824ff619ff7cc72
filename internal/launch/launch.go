package launch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// FreeAddr returns a 127.0.0.1:port nothing listened on when asked.
// Another process may take it before the caller listens: callers that
// start a server on it try again on a new one (StartRecoverd does).
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Process is a started child whose stdout and stderr are appended to a
// log file.
type Process struct {
	Name    string
	LogPath string
	Cmd     *exec.Cmd
	done    chan struct{}
}

// Start starts cmd (its Env, SysProcAttr and so on as the caller set them)
// with stdout and stderr appended to logPath.
func Start(name, logPath string, cmd *exec.Cmd) (*Process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, LogPath: logPath, Cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	return p, nil
}

// PID is the process id.
func (p *Process) PID() int { return p.Cmd.Process.Pid }

// Done is closed once the process has exited and been waited for.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) { p.Cmd.Process.Signal(sig) }

// Stop sends sig, waits up to wait for the exit, then sends SIGKILL and
// waits for the exit. Stopping an exited process does nothing.
func (p *Process) Stop(sig syscall.Signal, wait time.Duration) {
	p.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(wait):
		p.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// LogTail returns the last lines of the process's log.
func (p *Process) LogTail(lines int) string { return TailFile(p.LogPath, lines) }

// WaitReady asks ready (with a one-second deadline per call) every 50ms
// until it answers nil. It fails, with the log's tail, when the process
// exits, when ready still fails after timeout, or when ctx ends.
func (p *Process) WaitReady(ctx context.Context, timeout time.Duration, ready func(ctx context.Context) error) error {
	deadline := time.Now().Add(timeout)
	for {
		if p.Exited() {
			return fmt.Errorf("%s exited at start:\n%s", p.Name, p.LogTail(30))
		}
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		err := ready(rctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s not ready after %v: %w\n%s", p.Name, timeout, errors.Join(err, ctx.Err()), p.LogTail(30))
		}
		select {
		case <-ctx.Done():
		case <-p.done:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TailFile returns the last lines of a text file ("" when it cannot be
// read), for error messages that show a process's log.
func TailFile(path string, lines int) string {
	b, _ := os.ReadFile(path)
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
