package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/shardstore"
)

func TestInvalidFileRequests(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 200, valueSize: 100})
	e := startEnv(t, src, envOpts{cfg: PeerServerConfig{MaxPins: 2}})
	ctx := ctxT(t)
	pin, info, err := PinCommit(ctx, e.client, testShard, 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	f := info.Meta.Files[0]
	other := &pb.ShardId{Index: "books", Shard: 4}
	for _, tc := range []struct {
		name string
		req  *pb.FetchFileRequest
		code codes.Code
		msg  string // a part of the message
	}{
		{"no shard", &pb.FetchFileRequest{PinId: pin.ID, Name: f.Name}, codes.InvalidArgument, "shard is required"},
		{"bad index", &pb.FetchFileRequest{Shard: &pb.ShardId{Index: "../etc"}, PinId: pin.ID, Name: f.Name}, codes.InvalidArgument, "index name"},
		{"no pin", &pb.FetchFileRequest{Shard: pbShard(), Name: f.Name}, codes.InvalidArgument, "pin_id is required"},
		{"traversal", &pb.FetchFileRequest{Shard: pbShard(), PinId: pin.ID, Name: "oplog/../../leases"}, codes.InvalidArgument, "character '/'"},
		{"dot name", &pb.FetchFileRequest{Shard: pbShard(), PinId: pin.ID, Name: ".."}, codes.InvalidArgument, "starts with a dot"},
		{"empty name", &pb.FetchFileRequest{Shard: pbShard(), PinId: pin.ID}, codes.InvalidArgument, "empty"},
		{"long name", &pb.FetchFileRequest{Shard: pbShard(), PinId: pin.ID, Name: strings.Repeat("a", 300)}, codes.InvalidArgument, "at most"},
		{"unknown pin", &pb.FetchFileRequest{Shard: pbShard(), PinId: "nope", Name: f.Name}, codes.NotFound, "pin the commit again"},
		{"pin of another shard", &pb.FetchFileRequest{Shard: other, PinId: pin.ID, Name: f.Name}, codes.InvalidArgument, "holds shard"},
		{"not in commit", &pb.FetchFileRequest{Shard: pbShard(), PinId: pin.ID, Name: "seg_00000099_abc"}, codes.NotFound, "is not in commit"},
		{"oplog not served", &pb.FetchFileRequest{Shard: pbShard(), PinId: pin.ID, Name: "leases"}, codes.NotFound, "is not in commit"},
		{"negative offset", &pb.FetchFileRequest{Shard: pbShard(), PinId: pin.ID, Name: f.Name, Offset: -1}, codes.OutOfRange, "outside file"},
		{"offset past end", &pb.FetchFileRequest{Shard: pbShard(), PinId: pin.ID, Name: f.Name, Offset: f.Length + 1}, codes.OutOfRange, "outside file"},
		{"length past end", &pb.FetchFileRequest{Shard: pbShard(), PinId: pin.ID, Name: f.Name, Offset: 10, Length: f.Length}, codes.OutOfRange, "runs past the end"},
		{"negative length", &pb.FetchFileRequest{Shard: pbShard(), PinId: pin.ID, Name: f.Name, Length: -5}, codes.OutOfRange, "runs past the end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := e.client.FetchFile(ctx, tc.req)
			if err == nil {
				_, err = st.Recv()
			}
			if s, _ := status.FromError(err); s.Code() != tc.code || !strings.Contains(s.Message(), tc.msg) {
				t.Fatalf("got %v, want %v with %q", err, tc.code, tc.msg)
			}
		})
	}

	// A range read returns exactly the bytes asked for; offset == length is
	// an empty stream.
	st, err := e.client.FetchFile(ctx, &pb.FetchFileRequest{Shard: pbShard(), PinId: pin.ID, Name: f.Name, Offset: 5, Length: 100})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := st.Recv()
	if err != nil || ch.Offset != 5 || ch.UncompressedLength != 100 {
		t.Fatalf("range read: %+v, %v", ch, err)
	}
	if _, err := st.Recv(); err != io.EOF {
		t.Fatalf("after the range: %v", err)
	}
	st, err = e.client.FetchFile(ctx, &pb.FetchFileRequest{Shard: pbShard(), PinId: pin.ID, Name: f.Name, Offset: f.Length})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != io.EOF {
		t.Fatalf("read at the end: %v", err)
	}

	// Pins: bad input and the node's limit.
	for _, tc := range []struct {
		req  *pb.PinCommitRequest
		code codes.Code
	}{
		{&pb.PinCommitRequest{}, codes.InvalidArgument},
		{&pb.PinCommitRequest{Shard: &pb.ShardId{Index: "books", Shard: 9}}, codes.NotFound},
		{&pb.PinCommitRequest{Shard: pbShard(), Ttl: &durationpb.Duration{Seconds: -3}}, codes.InvalidArgument},
		{&pb.PinCommitRequest{Shard: pbShard(), Holder: strings.Repeat("h", 500)}, codes.InvalidArgument},
	} {
		if _, err := e.client.PinCommit(ctx, tc.req); status.Code(err) != tc.code {
			t.Errorf("%v: %v, want %v", tc.req, err, tc.code)
		}
	}
	if _, _, err := PinCommit(ctx, e.client, testShard, 0, "second"); err != nil {
		t.Fatal(err)
	}
	_, _, err = PinCommit(ctx, e.client, testShard, 0, "third")
	if status.Code(err) != codes.ResourceExhausted || rpcerr.Reason(err) != pb.ErrorReason_TOO_MANY_PINS || !retry.IsTransient(err) {
		t.Fatalf("pin over the limit: %v", err)
	}
	if _, err := e.client.RenewPin(ctx, &pb.RenewPinRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("renew without id: %v", err)
	}
	if _, err := GetShardInfo(ctx, e.client, shardstore.ShardID{Index: "missing", Shard: 1}); !errors.Is(err, shardstore.ErrNotFound) || status.Code(err) != codes.NotFound {
		t.Fatalf("metadata of a missing shard: %v", err)
	}
	for _, id := range []string{"", "a/b", ".x"} {
		_, err := AcquireLease(ctx, e.client, testShard, id, 0, "x")
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("lease id %q: %v", id, err)
		}
	}
}

// chunkSink records what sendFile sends.
type chunkSink struct{ chunks []*pb.FileChunk }

// Send keeps a copy of the chunk, as gRPC marshals it before Send returns
// (the sender reuses its buffer).
func (s *chunkSink) Send(ch *pb.FileChunk) error {
	s.chunks = append(s.chunks, proto.Clone(ch).(*pb.FileChunk))
	return nil
}

func TestSendFileCompressionHeuristic(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	text := textValue(r, 4*MinChunkSize)
	random := randomValue(r, 4*MinChunkSize)
	srv := NewPeerServer(emptyEngine(t), PeerServerConfig{})
	defer srv.Close()
	// A link measured at 10 KB/s: compression pays for what compresses
	// (even at the speed zstd has under the race detector).
	slow := func() *compressModel {
		m := &compressModel{}
		m.sent(10e3, time.Second)
		return m
	}
	// A link measured at 100 GB/s: only the probes compress.
	fast := func() *compressModel {
		m := &compressModel{}
		m.sent(100<<20, time.Millisecond)
		return m
	}
	for _, tc := range []struct {
		name  string
		data  []byte
		model *compressModel
		want  []pb.Compression
	}{
		// The first chunk is a probe: a sample of it is compressed to
		// measure zstd, and it goes raw.
		{"text, slow link", text, slow(), []pb.Compression{1, 2, 2, 2}},
		{"text, fast link", text, fast(), []pb.Compression{1, 1, 1, 1}},
		{"random", random, slow(), []pb.Compression{1, 1, 1, 1}},
		// The first chunk that does not pay switches compression off for
		// the rest of the file.
		{"text then random then text", append(append(text[:2*MinChunkSize:2*MinChunkSize], random[:MinChunkSize]...), text[:2*MinChunkSize]...), slow(),
			[]pb.Compression{1, 2, 1, 1, 1}},
		{"tiny tail", text[:MinChunkSize+100], slow(), []pb.Compression{1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sink chunkSink
			fs := &fileSend{stream: &sink, buf: make([]byte, MinChunkSize), chunkSize: MinChunkSize, model: tc.model, noGain: func() {}}
			if err := srv.sendFile(context.Background(), fs, bytes.NewReader(tc.data), "f", 0, int64(len(tc.data)), true, nil); err != nil {
				t.Fatal(err)
			}
			var got []pb.Compression
			var back []byte
			for _, ch := range sink.chunks {
				got = append(got, ch.Compression)
				data, err := chunkData(ch, int64(len(back)), int64(len(tc.data)-len(back)))
				if err != nil {
					t.Fatal(err)
				}
				back = append(back, data...)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) || !bytes.Equal(back, tc.data) {
				t.Fatalf("compression %v, want %v; round trip equal: %v", got, tc.want, bytes.Equal(back, tc.data))
			}
		})
	}
}

// TestProbeCompressesASample: on a fast link a probe compresses only the
// first probeSampleLen bytes of its chunk, to measure zstd, and the chunk
// goes raw: the target has nothing to decompress.
func TestProbeCompressesASample(t *testing.T) {
	text := textValue(rand.New(rand.NewPCG(3, 4)), 4*probeSampleLen)
	srv := NewPeerServer(emptyEngine(t), PeerServerConfig{})
	defer srv.Close()
	m := &compressModel{}
	m.sent(100<<20, time.Millisecond)
	var sink chunkSink
	fs := &fileSend{stream: &sink, buf: make([]byte, len(text)), chunkSize: len(text), model: m, noGain: func() {}}
	if err := srv.sendFile(context.Background(), fs, bytes.NewReader(text), "f", 0, int64(len(text)), true, nil); err != nil {
		t.Fatal(err)
	}
	if len(sink.chunks) != 1 || sink.chunks[0].Compression != pb.Compression_COMPRESSION_NONE || !bytes.Equal(sink.chunks[0].Data, text) {
		t.Fatalf("sent %d chunks, the first %v: want the chunk raw", len(sink.chunks), sink.chunks[0].GetCompression())
	}
	if m.zstdRaw != probeSampleLen || m.zstdOut <= 0 || m.zstdOut >= probeSampleLen/2 {
		t.Fatalf("zstd measured on %.0f raw bytes into %.0f: want the %d-byte sample, compressed", m.zstdRaw, m.zstdOut, probeSampleLen)
	}
	if got := srv.Stats().CompressionTries; got != 1 {
		t.Fatalf("%d compression tries, want the probe's", got)
	}
}
