package shardstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/recoverd/recoverd/seqno"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashHelperEnv) != "" {
		runCrashHelper()
		return
	}
	goleak.VerifyTestMain(m)
}

var ctx = context.Background()

func openNew(t testing.TB, dir string, opts Options) *Shard {
	t.Helper()
	opts.Create = true
	s, err := Open(dir, ShardID{Index: "idx", Shard: 0}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func reopen(t testing.TB, s *Shard, opts Options) *Shard {
	t.Helper()
	dir := filepath.Dir(filepath.Dir(filepath.Dir(s.Path())))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	n, err := Open(dir, s.ID(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func mustIndex(t testing.TB, s *Shard, n, from int) {
	t.Helper()
	docs := make([]Doc, n)
	for i := range docs {
		docs[i] = Doc{Key: fmt.Sprintf("doc-%06d", from+i), Value: []byte(fmt.Sprintf("value-%d", from+i))}
	}
	if _, err := s.IndexBatch(ctx, docs); err != nil {
		t.Fatal(err)
	}
}

func digest(t testing.TB, s *Shard) string {
	t.Helper()
	d, err := s.Digest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestIndexGetDeleteScan(t *testing.T) {
	s := openNew(t, t.TempDir(), Options{})
	mustIndex(t, s, 10, 0)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Index(ctx, "doc-000003", []byte("new")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, "doc-000004"); err != nil {
		t.Fatal(err)
	}
	v, seq, ok, err := s.Get("doc-000003")
	if err != nil || !ok || string(v) != "new" || seq != 10 {
		t.Fatalf("Get overwritten doc = %q %v %v %v", v, seq, ok, err)
	}
	if _, _, ok, _ := s.Get("doc-000004"); ok {
		t.Fatal("deleted doc still found")
	}
	var keys []string
	err = s.Scan(ctx, func(k string, v []byte, seq seqno.SeqNo) error { keys = append(keys, k); return nil })
	if err != nil || len(keys) != 9 || keys[3] != "doc-000003" || keys[4] != "doc-000005" {
		t.Fatalf("scan = %v %v", keys, err)
	}
	st := s.Stats()
	if st.Seq.MaxSeqNo != 11 || st.Seq.LocalCheckpoint != 11 {
		t.Fatalf("stats = %+v", st.Seq)
	}
	if _, err := s.Index(ctx, "", nil); err == nil {
		t.Fatal("empty key accepted")
	}
}

func TestMergeAndReopenKeepLogicalContent(t *testing.T) {
	s := openNew(t, t.TempDir(), Options{MaxSegmentBytes: 4 << 10})
	for i := 0; i < 5; i++ {
		mustIndex(t, s, 200, i*100) // overlapping keys: later versions win
		if _, err := s.Delete(ctx, fmt.Sprintf("doc-%06d", i*7)); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	mustIndex(t, s, 5, 1000) // unflushed, in the op log only
	before := digest(t, s)
	filesBefore := s.Metadata().Files
	if err := s.Merge(); err != nil {
		t.Fatal(err)
	}
	if got := digest(t, s); got != before {
		t.Fatal("merge changed the logical content")
	}
	after := s.Metadata().Files
	if len(after) < 2 {
		t.Fatalf("MaxSegmentBytes not honoured: %d segments", len(after))
	}
	for _, f := range after {
		for _, g := range filesBefore {
			if f.Name == g.Name {
				t.Fatalf("merge reused physical file %s", f.Name)
			}
		}
		if _, err := os.Stat(filepath.Join(s.Path(), f.Name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range filesBefore {
		if _, err := os.Stat(filepath.Join(s.Path(), g.Name)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("merged-away file %s still on disk", g.Name)
		}
	}
	mustIndex(t, s, 3, 2000)
	want := digest(t, s)
	s = reopen(t, s, Options{})
	if got := digest(t, s); got != want {
		t.Fatal("reopen (op log replay) changed the logical content")
	}
}

func TestReplicaAppliesOutOfOrder(t *testing.T) {
	primary := openNew(t, t.TempDir(), Options{})
	replica := openNew(t, t.TempDir(), Options{})
	var ops []Op
	for i := 0; i < 50; i++ {
		op, err := primary.Index(ctx, fmt.Sprintf("k%d", i%10), []byte{byte(i)})
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, op)
		if i%9 == 0 {
			op, err := primary.Delete(ctx, fmt.Sprintf("k%d", i%10))
			if err != nil {
				t.Fatal(err)
			}
			ops = append(ops, op)
		}
	}
	// Apply in reverse: the newest seqno must win for every key.
	for i := len(ops) - 1; i >= 0; i-- {
		if err := replica.Apply(ctx, ops[i:i+1]); err != nil {
			t.Fatal(err)
		}
		if i == len(ops)/2 {
			if err := replica.Flush(); err != nil {
				t.Fatal(err)
			}
			if cp := replica.Stats().Seq.LocalCheckpoint; cp != seqno.NoOpsPerformed {
				t.Fatalf("checkpoint %v with op 0 missing", cp)
			}
		}
	}
	if err := replica.Apply(ctx, ops[:5]); err != nil { // duplicates are skipped
		t.Fatal(err)
	}
	if digest(t, primary) != digest(t, replica) {
		t.Fatal("replica diverged")
	}
	if cp := replica.Stats().Seq.LocalCheckpoint; cp != seqno.SeqNo(len(ops)-1) {
		t.Fatalf("replica checkpoint %v, want %d", cp, len(ops)-1)
	}
	if err := replica.Merge(); err != nil {
		t.Fatal(err)
	}
	if digest(t, primary) != digest(t, replica) {
		t.Fatal("replica diverged after merge")
	}
}

func TestOpRetention(t *testing.T) {
	s := openNew(t, t.TempDir(), Options{RetainOps: 10})
	mustIndex(t, s, 100, 0)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if avg := s.AvgOpBytes(); avg < 20 || avg > 40 {
		t.Fatalf("average op size %d bytes for ops of about 30", avg)
	}
	if got := s.RetainedOps(); got.From != 90 || got.To != 99 {
		t.Fatalf("retained = %v, want [90..99]", got)
	}
	if err := s.ReadOps(seqno.Range{From: 50, To: 99}, func(Op) error { return nil }); !errors.Is(err, seqno.ErrCompacted) {
		t.Fatalf("read below floor: %v, want ErrCompacted", err)
	}
	if _, err := s.Leases().Add("peer", 92, "n2"); err != nil {
		t.Fatal(err)
	}
	mustIndex(t, s, 100, 100)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	var got []seqno.SeqNo
	err := s.ReadOps(seqno.Range{From: 92, To: 199}, func(op Op) error { got = append(got, op.SeqNo); return nil })
	if err != nil || len(got) != 108 || got[0] != 92 || got[107] != 199 {
		t.Fatalf("lease did not keep ops: %d ops, err %v", len(got), err)
	}
	if err := s.Leases().Remove("peer"); err != nil {
		t.Fatal(err)
	}
	mustIndex(t, s, 1, 200)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := s.RetainedOps().From; got != 191 {
		t.Fatalf("floor after lease removal = %v, want 191", got)
	}
	s = reopen(t, s, Options{RetainOps: 10})
	if err := s.ReadOps(seqno.Range{From: 191, To: 200}, func(Op) error { return nil }); err != nil {
		t.Fatalf("retained ops lost on reopen: %v", err)
	}
	if err := s.ReadOps(seqno.Range{From: 150, To: 160}, func(Op) error { return nil }); !errors.Is(err, seqno.ErrCompacted) {
		t.Fatalf("compacted ops after reopen: %v", err)
	}
	if err := s.ReadOps(seqno.Range{From: 195, To: 500}, func(Op) error { return nil }); err == nil {
		t.Fatal("range above max seqno accepted")
	}
	if err := s.ReadOps(seqno.Range{From: -3, To: 5}, func(Op) error { return nil }); err == nil {
		t.Fatal("negative range accepted")
	}
}

func TestDiff(t *testing.T) {
	src := Metadata{Files: []FileMeta{{Name: "a", Length: 10, CRC32C: 1, WriterUUID: "w1"}, {Name: "b", Length: 10, CRC32C: 2, WriterUUID: "w2"}, {Name: "c", Length: 10, CRC32C: 3, WriterUUID: "w3"}, {Name: "d", Length: 10, CRC32C: 4, WriterUUID: ""}}}
	dst := Metadata{Files: []FileMeta{{Name: "a", Length: 10, CRC32C: 1, WriterUUID: "w1"}, {Name: "b", Length: 10, CRC32C: 9, WriterUUID: "w2"}, {Name: "d", Length: 10, CRC32C: 4, WriterUUID: "wx"}, {Name: "z", Length: 1, CRC32C: 1, WriterUUID: ""}}}
	d := Diff(src, dst)
	names := func(fs []FileMeta) (out []string) {
		for _, f := range fs {
			out = append(out, f.Name)
		}
		return
	}
	if fmt.Sprint(names(d.Identical), names(d.Different), names(d.Missing)) != "[a d] [b] [c]" {
		t.Fatalf("diff = %+v", d)
	}
	if (FileMeta{Name: "a", Length: 1, CRC32C: 1, WriterUUID: "w1"}).SameAs(FileMeta{Name: "a", Length: 1, CRC32C: 1, WriterUUID: "w2"}) {
		t.Fatal("different writers are the same file")
	}
}

func TestPinnedCommitSurvivesMerge(t *testing.T) {
	s := openNew(t, t.TempDir(), Options{})
	mustIndex(t, s, 100, 0)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	ref, err := s.AcquireCommit()
	if err != nil {
		t.Fatal(err)
	}
	mustIndex(t, s, 100, 100)
	if err := s.Merge(); err != nil {
		t.Fatal(err)
	}
	for _, fm := range ref.Metadata().Files {
		f, _, err := ref.Open(fm.Name)
		if err != nil {
			t.Fatalf("pinned file gone after merge: %v", err)
		}
		f.Close()
		if err := verifyFile(filepath.Join(s.Path(), fm.Name), fm); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := ref.Open("seg_not_in_commit"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open of a file outside the commit: %v", err)
	}
	if err := ref.Release(); err != nil {
		t.Fatal(err)
	}
	for _, fm := range ref.Metadata().Files {
		if _, err := os.Stat(filepath.Join(s.Path(), fm.Name)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("released file %s not deleted", fm.Name)
		}
	}
}

// TestScanPathsAgree: the streaming merge and the segment-at-a-time scan
// (used beyond scanMergeMax segments) see the same documents.
func TestScanPathsAgree(t *testing.T) {
	s := openNew(t, t.TempDir(), Options{})
	for i := 0; i < 6; i++ {
		mustIndex(t, s, 300, i*150)
		if _, err := s.Delete(ctx, fmt.Sprintf("doc-%06d", i*100+7)); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	mustIndex(t, s, 50, 400) // memtable versions win over segment ones
	if _, err := s.Delete(ctx, "doc-000401"); err != nil {
		t.Fatal(err)
	}
	collect := func(scan func(func(string, []byte, seqno.SeqNo) error) error) []string {
		var out []string
		if err := scan(func(k string, v []byte, seq seqno.SeqNo) error {
			out = append(out, fmt.Sprintf("%s=%s@%d", k, v, seq))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	s.mu.RLock()
	merged, bySeg := collect(s.scanMerged), collect(s.scanBySegment)
	s.mu.RUnlock()
	if !slices.Equal(merged, bySeg) || len(merged) == 0 {
		t.Fatalf("scans differ: %d vs %d docs", len(merged), len(bySeg))
	}
	for _, d := range merged {
		if strings.HasPrefix(d, "doc-000401=") || strings.HasPrefix(d, "doc-000007=") {
			t.Fatalf("deleted doc scanned: %s", d)
		}
	}
}

func TestMemtableFlushesOnItsOwn(t *testing.T) {
	s := openNew(t, t.TempDir(), Options{FlushBytes: 64 << 10})
	for i := 0; i < 20; i++ {
		mustIndex(t, s, 100, i*100) // ~1.6 KiB a batch of small docs
	}
	docs := make([]Doc, 100)
	for i := range docs {
		docs[i] = Doc{Key: fmt.Sprintf("big-%d", i), Value: make([]byte, 1024)}
	}
	if _, err := s.IndexBatch(ctx, docs); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Segments == 0 || st.MemtableDocs > 100 {
		t.Fatalf("memtable past FlushBytes was not flushed: %+v", st)
	}
	want := digest(t, s)
	s = reopen(t, s, Options{})
	if digest(t, s) != want {
		t.Fatal("content changed across an automatic flush and a reopen")
	}
}

// TestFlushKeysInAnyOrder flushes memtables filled in key order (no sort
// needed), out of order, with updates of keys already there, and after a
// publish emptied the memtable: every flush writes each live document
// once, in key order (the segment writer refuses any other), and a reopen
// reads the same content.
func TestFlushKeysInAnyOrder(t *testing.T) {
	s := openNew(t, t.TempDir(), Options{})
	flush := func() {
		t.Helper()
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	mustIndex(t, s, 50, 100) // in order
	flush()
	mustIndex(t, s, 50, 200)
	mustIndex(t, s, 50, 0) // then below
	mustIndex(t, s, 10, 210)
	flush()
	mustIndex(t, s, 20, 300)
	if _, err := s.Delete(ctx, "doc-000305"); err != nil {
		t.Fatal(err)
	}
	mustIndex(t, s, 20, 300) // the same keys again, in order
	if _, err := s.Index(ctx, "doc-000310", []byte("newest")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, "doc-000311"); err != nil {
		t.Fatal(err)
	}
	flush()
	for _, k := range []string{"doc-000000", "doc-000149", "doc-000209", "doc-000305", "doc-000319"} {
		if _, _, ok, err := s.Get(k); err != nil || !ok {
			t.Fatalf("get %s: found %v, %v", k, ok, err)
		}
	}
	// The segment holds each key's newest op, not the first one written.
	if v, _, ok, err := s.Get("doc-000310"); err != nil || !ok || string(v) != "newest" {
		t.Fatalf("get doc-000310: %q, found %v, %v", v, ok, err)
	}
	if _, _, ok, err := s.Get("doc-000311"); err != nil || ok {
		t.Fatalf("get doc-000311 (deleted): found %v, %v", ok, err)
	}
	want := digest(t, s)
	s = reopen(t, s, Options{})
	if digest(t, s) != want {
		t.Fatal("content changed across flushes and a reopen")
	}
	if st := s.Stats(); st.MemtableDocs != 0 {
		t.Fatalf("memtable holds %d docs after the last flush", st.MemtableDocs)
	}
}
