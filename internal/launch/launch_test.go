package launch_test

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/recoverd/recoverd/internal/launch"
	"github.com/recoverd/recoverd/internal/testutil"
)

func TestWaitReadyStopsAtAnExitWithTheLog(t *testing.T) {
	p, err := launch.Start("sh", filepath.Join(t.TempDir(), "sh.log"), exec.Command("sh", "-c", "echo cannot start; exit 3"))
	if err != nil {
		t.Fatal(err)
	}
	err = p.WaitReady(context.Background(), time.Minute, func(context.Context) error { return errors.New("not yet") })
	if err == nil || !strings.Contains(err.Error(), "sh exited at start") || !strings.Contains(err.Error(), "cannot start") {
		t.Fatalf("WaitReady on a process that exited: %v", err)
	}
}

func TestStopKillsAProcessThatIgnoresTheSignal(t *testing.T) {
	p, err := launch.Start("sh", filepath.Join(t.TempDir(), "sh.log"), exec.Command("sh", "-c", `trap "" TERM; echo up; while :; do sleep 1; done`))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(syscall.SIGKILL, time.Second)
	if err := p.WaitReady(context.Background(), time.Minute, func(context.Context) error {
		if p.LogTail(1) != "up" {
			return errors.New("no trap yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	p.Stop(syscall.SIGTERM, 100*time.Millisecond)
	if !p.Exited() {
		t.Fatal("Stop returned before the process exited")
	}
	if ws, _ := p.Cmd.ProcessState.Sys().(syscall.WaitStatus); ws.Signal() != syscall.SIGKILL {
		t.Fatalf("process ended by %v, want SIGKILL after SIGTERM was ignored", p.Cmd.ProcessState)
	}
}

func TestStartRecoverd(t *testing.T) {
	bin := testutil.Binary(t, "recoverd")
	dir := t.TempDir()
	rd, err := launch.StartRecoverd(context.Background(), launch.RecoverdOptions{Bin: bin, Name: "n1", Data: filepath.Join(dir, "n1"),
		LogPath: filepath.Join(dir, "n1.log"), Args: []string{"--repo", "none"}})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Stop(syscall.SIGKILL, 10*time.Second)
	for _, addr := range []string{rd.GRPC, rd.Peer, rd.HTTP} {
		if !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Fatalf("listener %q is not on loopback", addr)
		}
	}
	rd.Stop(syscall.SIGTERM, 20*time.Second)
	if !strings.Contains(rd.LogTail(5), "shutting down") {
		t.Fatalf("no graceful shutdown in the log:\n%s", rd.LogTail(20))
	}

	// A node that cannot start: the error says why, from its log.
	_, err = launch.StartRecoverd(context.Background(), launch.RecoverdOptions{Bin: bin, Name: "n2", Data: filepath.Join(dir, "n2"),
		LogPath: filepath.Join(dir, "n2.log"), Args: []string{"--log-level", "loud"}})
	if err == nil || !strings.Contains(err.Error(), "recoverd n2 exited at start") || !strings.Contains(err.Error(), "--log-level") {
		t.Fatalf("StartRecoverd with a bad flag value: %v", err)
	}
}

func TestSplitEngineArgs(t *testing.T) {
	engine, rest := launch.SplitEngineArgs([]string{"--throttle", "2MB", "--retain-ops", "0", "--lease-ttl=6s", "--copy-retention", "1ms", "--pin-ttl", "1s"})
	if want := []string{"--retain-ops", "0", "--lease-ttl=6s", "--copy-retention", "1ms"}; !slices.Equal(engine, want) {
		t.Errorf("engine %q, want %q", engine, want)
	}
	if want := []string{"--throttle", "2MB", "--pin-ttl", "1s"}; !slices.Equal(rest, want) {
		t.Errorf("rest %q, want %q", rest, want)
	}
}
