package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// stopProcess sends SIGSTOP to pid and waits until every thread of it is
// stopped. kill(2) returns once the signal is queued: on a loaded machine a
// thread of the target may still run for a while and answer a request, so
// a test that pauses a server and at once expects silence must wait for
// the stop to take hold.
func stopProcess(pid int) error {
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		running, err := runningThreads(pid)
		if err != nil || running == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d: %d thread(s) still running 10s after SIGSTOP", pid, running)
		}
		time.Sleep(time.Millisecond)
	}
}

// runningThreads counts the threads of pid not in the stopped state (T, or
// t when traced), from /proc/<pid>/task/*/stat.
func runningThreads(pid int) (int, error) {
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(stats) == 0 {
		return 0, fmt.Errorf("process %d: no thread in /proc: %v", pid, err)
	}
	running := 0
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread ended
		}
		// "pid (comm) S ...": the state follows the last ')'.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 || i+2 >= len(b) {
			return 0, fmt.Errorf("%s: unexpected %q", p, b)
		}
		if s := b[i+2]; s != 'T' && s != 't' {
			running++
		}
	}
	return running, nil
}
