package recovery

import (
	"sync/atomic"
	"testing"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/planner"
	"github.com/recoverd/recoverd/shardstore"
)

// countScans counts the content digests a shard starts (a whole read).
func countScans(n *atomic.Int64) shardstore.Options {
	return shardstore.Options{RetainOps: 10000, Failpoint: func(name string) {
		if name == "digest.scan" {
			n.Add(1)
		}
	}}
}

// TestStreamedCheckReadsNoShardAgain: by default a peer plan and an
// ops-only plan end with the streamed check: the files' BLAKE3 sums and the
// ops' digest computed on both nodes as they streamed, and no content
// digest, which would read the whole shard again on the source. The
// source's ops are complete (nothing above its local checkpoint): their
// sums come with the ops, and the source is never asked to read them again
// for a digest (GetShardDigest).
func TestStreamedCheckReadsNoShardAgain(t *testing.T) {
	var scans atomic.Int64
	e := newEnv(t, countScans(&scans), Config{VerifyDigest: DigestAuto})
	e.faults.failNext("/recoverd.v1.PeerService/GetShardDigest", 1) // counted in hits, then answered
	src := e.source()
	write(t, src, 500, 0, 512)
	src.SetGlobalCheckpoint(499)
	flush(t, src)
	write(t, src, 100, 500, 512) // ops above the commit: staged with the files

	s := e.run(StartRequest{})
	requireDone(t, s)
	if s.Plan.Kind != planner.KindPeer || s.Result.Method != CheckStreamed ||
		!contains(s.Result.Detail, "files from the peer had the same BLAKE3 sum") || !contains(s.Result.Detail, "100 ops") {
		t.Fatalf("plan %s, check %+v", s.Plan.Kind, s.Result)
	}

	write(t, src, 300, 600, 512)
	s = e.run(StartRequest{})
	requireDone(t, s)
	if s.Plan.Kind != planner.KindOpsOnly || s.Result.Method != CheckStreamed || !contains(s.Result.Detail, "300 ops") {
		t.Fatalf("plan %s, check %+v", s.Plan.Kind, s.Result)
	}
	if n := scans.Load(); n != 0 {
		t.Fatalf("the source read its whole shard for %d content digests", n)
	}
	if e.faults.hits.Load() != 0 {
		t.Fatal("the source was asked to digest the ops it had sent")
	}
	if digest(t, e.target()) != digest(t, src) {
		t.Fatal("copy differs")
	}
}

// TestStreamedCheckCatchesAnOpChangedInFlight: an op whose value changes
// between the source's op log and the target (FetchOps carries no
// checksum per op) makes the copy differ; the streamed check sees it and
// fails the recovery. Without a digest the same recovery ends done with a
// copy that differs, which is what the check is for.
func TestStreamedCheckCatchesAnOpChangedInFlight(t *testing.T) {
	for _, mode := range []DigestCheck{DigestAuto, DigestNever} {
		t.Run(string(mode), func(t *testing.T) {
			e := newEnv(t, shardstore.Options{RetainOps: 10000}, Config{VerifyDigest: mode})
			src := e.source()
			write(t, src, 200, 0, 256)
			flush(t, src)
			write(t, src, 50, 200, 256)
			var changed atomic.Bool
			e.faults.mu.Lock()
			e.faults.change = func(method string, m any) {
				b, ok := m.(*pb.OpBatch)
				if !ok {
					return
				}
				if len(b.Ops) > 0 && changed.CompareAndSwap(false, true) {
					b.Ops[0].Value[0] ^= 1
				}
				// Packed batches (the default): the decoded values point
				// into the message's bytes.
				if ops, _ := pbconv.OpsFromPacked(nil, b.PackedOps, 0); len(ops) > 0 && len(ops[0].Value) > 0 && changed.CompareAndSwap(false, true) {
					ops[0].Value[0] ^= 1
				}
			}
			e.faults.mu.Unlock()
			s := e.run(StartRequest{})
			if !changed.Load() {
				t.Fatal("no op batch went through the fault")
			}
			if mode == DigestNever {
				requireDone(t, s)
				if digest(t, e.target()) == digest(t, src) {
					t.Fatal("the changed op left the copy equal: the fault did nothing")
				}
				return
			}
			if s.Stage != StageFailed || !contains(s.Error, "differs from the source") || s.Result == nil || s.Result.Match {
				t.Fatalf("recovery with an op changed in flight ended %s: %s (check %+v)", s.Stage, s.Error, s.Result)
			}
		})
	}
}
