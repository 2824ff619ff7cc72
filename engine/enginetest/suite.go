// Package enginetest is the acceptance suite of the engine contract: one set
// of tests that every implementation of package engine passes, as every
// Thanos bucket passes objstore's AcceptanceTest. An implementation runs it
// from a test of its own:
//
//	func TestAcceptance(t *testing.T) { enginetest.Run(t, harness) }
//
// and, for the crash tests, which re-execute the test binary as a child
// that publishes and is killed at a failpoint, from its TestMain:
//
//	func TestMain(m *testing.M) { enginetest.RunChild(harness); os.Exit(m.Run()) }
//
// The suite builds its shards through the contract itself (a copy created
// by OpenTarget and an empty Publish, ops by Apply, commits by Flush, files
// copied from a pin into a staging), so it asks of the harness only what
// the contract does not say: how to open the engine, how to write as a
// primary (for refused writes), how to damage a shard or make it
// unreadable, and where its publish can be killed.
package enginetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/seqno"
)

// Options are the knobs the suite turns on an engine it opens.
type Options struct {
	// LeaseTTL is the lifetime of a retention lease without renewal (zero:
	// the engine's default, long enough for any test).
	LeaseTTL time.Duration
	// CopyRetention is how long a copy's lease (Retention.HandOff) lives
	// once the copy acknowledges nothing (zero: the engine's default).
	CopyRetention time.Duration
	// Failpoint, in a crash child only, is called at the engine's named
	// points (Harness.PublishFailpoints); the child kills itself there.
	Failpoint func(name string)
}

// Failpoint is a point of an engine's Publish where the crash test kills
// the publishing process.
type Failpoint struct {
	Name string
	// Committed says whether the commit is durable at that point: the copy
	// then reopens with the new content, otherwise with the old.
	Committed bool
}

// Harness is what the suite needs of an implementation beyond the contract.
type Harness struct {
	// Open opens the engine on dataDir, empty or left by an engine the
	// harness opened before (maybe killed). The suite closes it. Open may
	// be called from a child process (RunChild), where t is nil: it then
	// returns an error instead of failing t.
	Open func(t testing.TB, dataDir string, o Options) (engine.Engine, error)
	// Index writes n new documents to shard id as its primary, through
	// the engine's own write API (which the contract does not cover), and
	// returns its error: ErrWritesRefused while a recovery refuses writes.
	Index func(ctx context.Context, e engine.Engine, id engine.ShardID, n int) error
	// Damage corrupts the committed shard id under dataDir (its engine
	// closed) so that opening it proves it corrupt (ErrCorrupt).
	Damage func(t testing.TB, dataDir string, id engine.ShardID)
	// Unreadable makes shard id unreadable without damaging it (its engine
	// closed: opening it fails with ErrUnavailable) until restore is
	// called.
	Unreadable func(t testing.TB, dataDir string, id engine.ShardID) (restore func())
	// Replicates says the engine has replication of its own: HandOff must
	// then succeed, not answer errors.ErrUnsupported.
	Replicates bool
	// PublishFailpoints are the engine's failpoints across a Publish, in
	// order; the crash test kills a publish at each.
	PublishFailpoints []Failpoint
}

// Run runs the whole suite on the engine the harness opens.
func Run(t *testing.T, h Harness) {
	for _, c := range []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"Shards", testShards},
		{"Uncommitted", testUncommitted},
		{"CorruptAndUnavailable", testCorruptAndUnavailable},
		{"Info", testInfo},
		{"Pins", testPins},
		{"PinTTL", testPinTTL},
		{"ReadOps", testReadOps},
		{"Apply", testApply},
		{"Leases", testLeases},
		{"LeaseExpiry", testLeaseExpiry},
		{"HandOff", testHandOff},
		{"HandOffExpiry", testHandOffExpiry},
		{"RefuseWrites", testRefuseWrites},
		{"Publish", testPublish},
		{"PublishRefusals", testPublishRefusals},
		{"Abandon", testAbandon},
		{"StagingKeptAcrossReopen", testStagingKept},
		{"Digest", testDigest},
		{"BadInput", testBadInput},
		{"Closed", testClosed},
		{"PublishKilled", testPublishKilled},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, h) })
	}
}

var ctx = context.Background()

// open opens an engine on dir and closes it when the test ends.
func open(t testing.TB, h Harness, dir string, o Options) engine.Engine {
	t.Helper()
	e, err := h.Open(t, dir, o)
	if err != nil {
		t.Fatalf("open the engine on %s: %v", dir, err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// fresh opens an engine on a new data directory.
func fresh(t testing.TB, h Harness) (engine.Engine, string) {
	dir := t.TempDir()
	return open(t, h, dir, Options{}), dir
}

func sid(index string) engine.ShardID { return engine.ShardID{Index: index, Shard: 0} }

// emptyCommit is the commit data of a new, empty copy of history.
func emptyCommit(e engine.Engine, history string) engine.CommitData {
	v := e.Version()
	return engine.CommitData{HistoryUUID: history, MaxSeqNo: seqno.NoOpsPerformed, LocalCheckpoint: seqno.NoOpsPerformed,
		GlobalCheckpoint: seqno.NoOpsPerformed, PrimaryTerm: 1, WriterVersion: v.Writer, FormatVersion: v.MaxFormat}
}

// create makes shard id a committed, empty copy of a new history, through
// the contract (OpenTarget and an empty Publish), and returns it.
func create(t testing.TB, e engine.Engine, id engine.ShardID) engine.Target {
	t.Helper()
	tgt, replaced, err := e.OpenTarget(ctx, id)
	if err != nil || replaced != "" {
		t.Fatalf("OpenTarget(%s) = %q, %v", id, replaced, err)
	}
	st, err := tgt.StartStaging(ctx, "create-"+id.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Publish(ctx, nil, emptyCommit(e, uuid.NewString())); err != nil {
		t.Fatalf("publish the first, empty commit of %s: %v", id, err)
	}
	return tgt
}

// docs returns n index ops from seqno from, of term.
func docs(from seqno.SeqNo, n int, term uint64) []engine.Op {
	out := make([]engine.Op, n)
	for i := range out {
		s := from + seqno.SeqNo(i)
		out[i] = engine.Op{Key: fmt.Sprintf("doc-%06d", s), SeqNo: s, PrimaryTerm: term, Kind: engine.OpIndex,
			Value: []byte(fmt.Sprintf("value %d of term %d", s, term))}
	}
	return out
}

func apply(t testing.TB, tgt engine.Target, ops []engine.Op) {
	t.Helper()
	if err := tgt.Apply(ctx, ops); err != nil {
		t.Fatalf("apply %d ops: %v", len(ops), err)
	}
}

func flush(t testing.TB, tgt engine.Target) {
	t.Helper()
	if err := tgt.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
}

func info(t testing.TB, s engine.Shard) engine.ShardInfo {
	t.Helper()
	in, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("info of %s: %v", s.ID(), err)
	}
	return in
}

func digest(t testing.TB, s engine.Shard, upTo seqno.SeqNo) string {
	t.Helper()
	d, _, err := s.DigestAt(ctx, nil, upTo)
	if err != nil {
		t.Fatalf("digest of %s at %v: %v", s.ID(), upTo, err)
	}
	return d
}

// readOps reads r of s in the history of s.
func readOps(t testing.TB, s engine.Shard, r seqno.Range) []engine.Op {
	t.Helper()
	var out []engine.Op
	err := s.ReadOps(ctx, engine.OpsRequest{Range: r, History: info(t, s).Meta.Commit.HistoryUUID}, func(b []engine.Op) error {
		out = append(out, b...)
		return nil
	})
	if err != nil {
		t.Fatalf("read ops %v of %s: %v", r, s.ID(), err)
	}
	return out
}

// want fails t unless err wraps target.
func want(t testing.TB, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: %v, want an error wrapping %q", what, err, target)
	}
}

// source makes shard id a copy with files (two flushes) and ops above its
// commit, as a recovery's source, and returns it.
func source(t testing.TB, e engine.Engine, id engine.ShardID) engine.Target {
	t.Helper()
	s := create(t, e, id)
	apply(t, s, docs(0, 200, 1))
	flush(t, s)
	apply(t, s, docs(200, 100, 1))
	flush(t, s)
	apply(t, s, docs(300, 40, 1)) // above the commit: staged as ops
	return s
}

// stage copies the files of the commit src has now into st, as recoverd
// does (read at the pin's paths, written into Dir, fsynced), stages the
// ops above the commit's local checkpoint, and returns the commit.
func stage(t testing.TB, src engine.Shard, st engine.Staging) engine.Metadata {
	t.Helper()
	md, err := stageErr(src, st)
	if err != nil {
		t.Fatalf("stage the commit of %s: %v", src.ID(), err)
	}
	return md
}

// copyFile copies and fsyncs one file.
func copyFile(t testing.TB, from, to string) {
	t.Helper()
	if err := copyFileErr(from, to); err != nil {
		t.Fatal(err)
	}
}

func copyFileErr(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(to, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	return errors.Join(err, f.Sync(), f.Close())
}

// eventually polls cond until it holds or a generous deadline passes: it
// waits for an expiry, it does not time one.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never happened", what)
		}
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
