package transfer

import (
	"context"
	"testing"

	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

func TestShardInfoAndDigest(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 300, valueSize: 50, flushes: 2, opts: shardstore.Options{RetainOps: 1000}})
	if _, err := src.Index(context.Background(), "unflushed", []byte("x")); err != nil {
		t.Fatal(err)
	}
	e := startEnv(t, src, envOpts{cfg: PeerServerConfig{WriterVersion: "9.9.9", MaxFormat: 7}})
	ctx := ctxT(t)
	info, err := GetShardInfo(ctx, e.client, testShard)
	if err != nil {
		t.Fatal(err)
	}
	meta, st := src.Metadata(), src.Stats()
	if info.Shard != testShard || info.Meta.Generation != meta.Generation || len(info.Meta.Files) != len(meta.Files) ||
		info.Meta.Commit != meta.Commit || info.Seq != st.Seq || info.Retained != src.RetainedOps() ||
		info.WriterVersion != "9.9.9" || info.MaxFormat != 7 || info.PrimaryTerm != st.PrimaryTerm {
		t.Fatalf("info %+v\nmeta %+v\nstats %+v", info, meta, st)
	}
	for i := range meta.Files {
		if info.Meta.Files[i] != meta.Files[i] {
			t.Fatalf("file %d: %+v, want %+v", i, info.Meta.Files[i], meta.Files[i])
		}
	}
	if info.Seq.MaxSeqNo != 300 || info.Meta.Commit.MaxSeqNo != 299 {
		t.Fatalf("live max seqno %v, commit %v", info.Seq.MaxSeqNo, info.Meta.Commit.MaxSeqNo)
	}
	d, err := GetShardDigest(ctx, e.client, testShard, "", seqno.Unassigned)
	if err != nil || d.Digest != mustDigest(t, src) || d.HistoryUUID != st.HistoryUUID || d.UpTo != 300 {
		t.Fatalf("digest %+v, %v", d, err)
	}
}
