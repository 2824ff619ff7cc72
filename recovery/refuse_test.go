package recovery

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/transfer"
)

// primaryWrite indexes one document into the target copy as its primary
// would (the document API's path), returning the engine's answer.
func primaryWrite(t *testing.T, e *env) error {
	t.Helper()
	s, err := e.tgt.get(shardID, false, true)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.IndexBatch(context.Background(), []shardstore.Doc{{Key: "primary-write", Value: []byte("v")}})
	return err
}

// envWithOwnCopy is a source of 2,000 1 KiB docs behind a 512 KiB/s
// throttle (a recovery of it lasts seconds) and a target copy with
// content of its own, which a recovery replaces.
func envWithOwnCopy(t *testing.T, cfg Config) *env {
	t.Helper()
	cfg.Throttle = transfer.NewThrottle(512 << 10)
	e := newEnv(t, shardstore.Options{}, cfg)
	write(t, e.source(), 2000, 0, 1024)
	flush(t, e.source())
	tgt, err := e.tgt.get(shardID, true, false)
	if err != nil {
		t.Fatal(err)
	}
	write(t, tgt, 10, 90000, 64)
	flush(t, tgt)
	return e
}

// waitBytes waits until r received file bytes.
func waitBytes(t *testing.T, r *Recovery) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		s, _ := r.State()
		if s.Totals.FromPeer.RecoveredBytes > 0 {
			return
		}
		if time.Now().After(deadline) || s.Stage.Finished() {
			t.Fatalf("no bytes moved: %s %s", s.Stage, s.Error)
		}
	}
}

// TestEngineRefusesWritesWhileARecoveryReplacesTheCopy: from Start until
// the recovery ends, the engine refuses primary writes to the target
// (Engine.RefuseWrites, naming the recovery); once it is done the copy
// takes them again.
func TestEngineRefusesWritesWhileARecoveryReplacesTheCopy(t *testing.T) {
	e := envWithOwnCopy(t, Config{})
	r, err := e.m.Start(StartRequest{Shard: shardID, Source: e.addr, ID: "r-refuses"})
	if err != nil {
		t.Fatal(err)
	}
	if err := primaryWrite(t, e); !errors.Is(err, engine.ErrWritesRefused) || !strings.Contains(err.Error(), "r-refuses") {
		t.Fatalf("write once the recovery was accepted: %v, want ErrWritesRefused naming r-refuses", err)
	}
	waitBytes(t, r)
	if err := primaryWrite(t, e); !errors.Is(err, engine.ErrWritesRefused) {
		t.Fatalf("write while files move: %v, want ErrWritesRefused", err)
	}
	requireDone(t, waitDone(t, r))
	if err := primaryWrite(t, e); err != nil {
		t.Fatalf("write after the recovery: %v", err)
	}
}

// TestResumedRecoveryRefusesWritesAgain: refusals live in the engine's
// memory. A node that restarts (recoverd and its engine) refuses writes
// again for the recovery it resumes, before it writes, and lifts the
// refusal when it ends.
func TestResumedRecoveryRefusesWritesAgain(t *testing.T) {
	e := envWithOwnCopy(t, Config{StateDir: t.TempDir()})
	r, err := e.m.Start(StartRequest{Shard: shardID, Source: e.addr, ID: "r-resumes"})
	if err != nil {
		t.Fatal(err)
	}
	waitBytes(t, r)
	e.m.Close()
	// The engine restarts too: its refusals are gone.
	e.tgt.mu.Lock()
	if err := e.tgt.eng.Close(); err != nil {
		e.tgt.mu.Unlock()
		t.Fatal(err)
	}
	e.tgt.eng = e.tgt.open()
	e.tgt.mu.Unlock()
	if err := primaryWrite(t, e); err != nil {
		t.Fatalf("write to the restarted engine before recoverd resumed: %v", err)
	}
	m2 := restartManager(t, e)
	if err := primaryWrite(t, e); !errors.Is(err, engine.ErrWritesRefused) || !strings.Contains(err.Error(), "r-resumes") {
		t.Fatalf("write once the recovery resumed: %v, want ErrWritesRefused naming r-resumes", err)
	}
	r2, err := m2.Get("r-resumes")
	if err != nil {
		t.Fatal(err)
	}
	requireDone(t, waitDone(t, r2))
	if err := primaryWrite(t, e); err != nil {
		t.Fatalf("write after the resumed recovery: %v", err)
	}
}

// TestUnresumableRecoveryLiftsItsRefusal: an engine that outlives
// recoverd (a process beside it) still refuses writes for the recovery
// recoverd was running. One that cannot resume at the next start (here:
// the node dials no source any more) fails, and its refusal is lifted.
func TestUnresumableRecoveryLiftsItsRefusal(t *testing.T) {
	e := envWithOwnCopy(t, Config{StateDir: t.TempDir()})
	r, err := e.m.Start(StartRequest{Shard: shardID, Source: e.addr, ID: "r-stuck"})
	if err != nil {
		t.Fatal(err)
	}
	waitBytes(t, r)
	e.m.Close()
	if err := primaryWrite(t, e); !errors.Is(err, engine.ErrWritesRefused) {
		t.Fatalf("write while recoverd is stopped mid-recovery: %v, want ErrWritesRefused", err)
	}
	cfg := e.m.cfg
	cfg.Metrics, cfg.Dial = NewMetrics(nil), nil
	m := NewManager(cfg)
	t.Cleanup(m.Close)
	if err := m.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	r2, err := m.Get("r-stuck")
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := r2.State(); s.Stage != StageFailed {
		t.Fatalf("the recovery that cannot resume is %s, want failed", s.Stage)
	}
	if err := primaryWrite(t, e); err != nil {
		t.Fatalf("write once the recovery failed to resume: %v", err)
	}
}
