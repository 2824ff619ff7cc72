package pbconv

import (
	"bytes"
	"strings"
	"testing"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/shardstore"
)

func TestPackedRoundTrip(t *testing.T) {
	ops := []shardstore.Op{
		{Key: "a", SeqNo: 0, PrimaryTerm: 1, Kind: shardstore.OpIndex, Value: []byte("v0")},
		{Key: "b", SeqNo: 1, PrimaryTerm: 1, Kind: shardstore.OpDelete},
		{SeqNo: 2, PrimaryTerm: 2, Kind: shardstore.OpNoOp},
		{Key: strings.Repeat("k", 300), SeqNo: 1 << 40, PrimaryTerm: 1 << 33, Kind: shardstore.OpIndex, Value: bytes.Repeat([]byte("x"), 1000)},
	}
	var p []byte
	for i := range ops {
		p = AppendPacked(p, &ops[i])
	}
	got, err := OpsFromPacked(nil, p, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ops) {
		t.Fatalf("%d ops, want %d", len(got), len(ops))
	}
	for i := range ops {
		g, w := got[i], ops[i]
		if g.Key != w.Key || g.SeqNo != w.SeqNo || g.PrimaryTerm != w.PrimaryTerm || g.Kind != w.Kind || !bytes.Equal(g.Value, w.Value) || (g.Value == nil) != (w.Value == nil) {
			t.Fatalf("op %d: %+v, want %+v", i, g, w)
		}
	}
	// A value handed out must not reach into the next op when appended to.
	v := append(got[0].Value, 'z')
	if got[1].Key != "b" || string(v) != "v0z" {
		t.Fatalf("appending to a value changed the next op: %q", got[1].Key)
	}
	// A cut inside an op is an error, never a shorter batch.
	bounds, end := map[int]bool{}, 0
	for i := range ops {
		end += len(AppendPacked(nil, &ops[i]))
		bounds[end] = true
	}
	for n := 1; n < len(p); n++ {
		if _, err := OpsFromPacked(nil, p[:n], 0); (err == nil) != bounds[n] {
			t.Fatalf("cut at %d of %d: %v", n, len(p), err)
		}
	}
}

func TestPackedRefusesBadOps(t *testing.T) {
	bad := map[string][]byte{}
	op := shardstore.Op{Key: "k", SeqNo: 1, PrimaryTerm: 1, Kind: shardstore.OpIndex}
	p := AppendPacked(nil, &op)
	kind := 1 + 1 + 1 + 1 // key length, key, seqno, term
	unspecified := bytes.Clone(p)
	unspecified[kind] = byte(pb.OpKind_OP_KIND_UNSPECIFIED)
	bad["unspecified kind"] = unspecified
	unknown := bytes.Clone(p)
	unknown[kind] = 9
	bad["unknown kind"] = unknown
	bad["no-op with a key"] = AppendPacked(nil, &shardstore.Op{Key: "k", SeqNo: 1, Kind: shardstore.OpNoOp})
	bad["index without a key"] = AppendPacked(nil, &shardstore.Op{SeqNo: 1, Kind: shardstore.OpIndex})
	bad["key longer than the batch"] = []byte{50, 'k'}
	for name, p := range bad {
		if _, err := OpsFromPacked(nil, p, 0); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}
