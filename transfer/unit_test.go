package transfer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/seqno"
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
	if status.Code(err) != codes.ResourceExhausted || Reason(err) != pb.ErrorReason_TOO_MANY_PINS || !IsTransient(err) {
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

// fakeFiles serves one in-memory file; stall makes the first n streams
// hang without sending anything.
type fakeFiles struct {
	data   []byte
	stall  atomic.Int32
	calls  atomic.Int32
	offs   sync.Map // call -> offset asked
	chunk  int
	broken func(call int, ch *pb.FileChunk) // may alter chunks
}

func (f *fakeFiles) FetchFile(ctx context.Context, in *pb.FetchFileRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[pb.FileChunk], error) {
	call := int(f.calls.Add(1))
	f.offs.Store(call, in.Offset)
	return &fakeStream{ctx: ctx, f: f, call: call, off: in.Offset, stall: f.stall.Add(-1) >= 0}, nil
}

func (f *fakeFiles) RenewPin(context.Context, *pb.RenewPinRequest, ...grpc.CallOption) (*pb.RenewPinResponse, error) {
	return &pb.RenewPinResponse{}, nil
}

type fakeStream struct {
	grpc.ClientStream
	ctx   context.Context
	f     *fakeFiles
	call  int
	off   int64
	stall bool
	sent  int
}

func (s *fakeStream) Recv() (*pb.FileChunk, error) {
	if s.stall && s.sent == 1 {
		<-s.ctx.Done() // a blackholed connection: nothing, ever
		return nil, status.FromContextError(s.ctx.Err()).Err()
	}
	if s.off >= int64(len(s.f.data)) {
		return nil, io.EOF
	}
	n := min(int64(s.f.chunk), int64(len(s.f.data))-s.off)
	data := s.f.data[s.off : s.off+n]
	ch := &pb.FileChunk{Offset: s.off, Data: data, Crc32C: CRC32C(data), UncompressedLength: uint32(n)}
	if s.f.broken != nil {
		s.f.broken(s.call, ch)
	}
	s.off += n
	s.sent++
	return ch, nil
}

// fileWithFooter returns n random bytes ending in their CRC32C, as a
// segment file does, and its metadata.
func fileWithFooter(name string, n int) ([]byte, shardstore.FileMeta) {
	r := rand.New(rand.NewPCG(7, uint64(n)))
	b := randomValue(r, n)
	crc := CRC32C(b[:n-4])
	binary.LittleEndian.PutUint32(b[n-4:], crc)
	return b, shardstore.FileMeta{Name: name, Length: int64(n), CRC32C: crc}
}

func TestIdleStreamIsResumed(t *testing.T) {
	data, meta := fileWithFooter("seg_idle", 5*MinChunkSize+123)
	fc := &fakeFiles{data: data, chunk: MinChunkSize}
	fc.stall.Store(2) // the first two streams send one chunk, then go silent
	_, st := newTarget(t, "rec-1")
	start := time.Now()
	res, err := FetchFiles(ctxT(t), fc, testShard, Pin{ID: "p"}, []shardstore.FileMeta{meta}, st,
		FetchOptions{IdleTimeout: 100 * time.Millisecond, Retry: RetryPolicy{Initial: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumes != 2 || res.Bytes != meta.Length {
		t.Fatalf("result %+v", res)
	}
	for call, want := range []int64{0, MinChunkSize, 2 * MinChunkSize} {
		if off, _ := fc.offs.Load(call + 1); off != want {
			t.Fatalf("stream %d asked offset %v, want %d", call+1, off, want)
		}
	}
	t.Logf("two stalls of 100ms resumed in %v", time.Since(start))
}

func TestIdleAfterProgressAndStuckServer(t *testing.T) {
	data, meta := fileWithFooter("seg_idle", 3*MinChunkSize)
	fc := &fakeFiles{data: data, chunk: MinChunkSize}
	fc.stall.Store(1000)
	_, st := newTarget(t, "rec-1")
	_, err := FetchFiles(ctxT(t), fc, testShard, Pin{ID: "p"}, []shardstore.FileMeta{meta}, st,
		FetchOptions{IdleTimeout: 20 * time.Millisecond, Retry: RetryPolicy{Initial: time.Millisecond, MaxRetries: 3}})
	// Every stream moves one chunk, so progress resets the budget until the
	// file is done: stalls after progress are not failures in a row.
	if err != nil {
		t.Fatalf("progressing transfer failed: %v", err)
	}
	fc2 := &fakeFiles{data: data, chunk: MinChunkSize, broken: func(_ int, ch *pb.FileChunk) {
		if ch.Offset > 0 {
			ch.Offset = 0 // a server that never moves on: corrupt at the same offset
		}
	}}
	_, st2 := newTarget(t, "rec-2")
	_, err = FetchFiles(ctxT(t), fc2, testShard, Pin{ID: "p"}, []shardstore.FileMeta{meta}, st2, FetchOptions{Retry: RetryPolicy{Initial: time.Millisecond}})
	if !errors.Is(err, shardstore.ErrCorrupt) || !strings.Contains(err.Error(), "seg_idle") {
		t.Fatalf("stuck server: %v", err)
	}
}

func TestTransientBudget(t *testing.T) {
	_, meta := fileWithFooter("seg_x", 2*MinChunkSize)
	var calls atomic.Int32
	fc := &failingFiles{err: status.Error(codes.Unavailable, "down"), calls: &calls}
	_, st := newTarget(t, "rec-1")
	_, err := FetchFiles(ctxT(t), fc, testShard, Pin{ID: "p"}, []shardstore.FileMeta{meta}, st,
		FetchOptions{Retry: RetryPolicy{Initial: time.Millisecond, Max: 2 * time.Millisecond, MaxRetries: 4}})
	if !errors.Is(err, ErrRetriesExhausted) || IsTransient(err) || calls.Load() != 5 {
		t.Fatalf("err %v after %d calls", err, calls.Load())
	}
	calls.Store(0)
	fc.err = status.Error(codes.NotFound, "gone")
	_, err = FetchFiles(ctxT(t), fc, testShard, Pin{ID: "p"}, []shardstore.FileMeta{meta}, st, FetchOptions{})
	if status.Code(err) != codes.NotFound || calls.Load() != 1 {
		t.Fatalf("permanent error retried: %v after %d calls", err, calls.Load())
	}
}

type failingFiles struct {
	fakeFiles
	err   error
	calls *atomic.Int32
}

func (f *failingFiles) FetchFile(context.Context, *pb.FetchFileRequest, ...grpc.CallOption) (grpc.ServerStreamingClient[pb.FileChunk], error) {
	f.calls.Add(1)
	return nil, f.err
}

func TestCancelStopsFetch(t *testing.T) {
	data, meta := fileWithFooter("seg_c", 4*MinChunkSize)
	fc := &fakeFiles{data: data, chunk: MinChunkSize}
	fc.stall.Store(1000)
	_, st := newTarget(t, "rec-1")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := FetchFiles(ctx, fc, testShard, Pin{ID: "p"}, []shardstore.FileMeta{meta}, st, FetchOptions{IdleTimeout: time.Hour})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled fetch: %v", err)
	}
}

// chunkSink records what sendFile sends.
type chunkSink struct{ chunks []*pb.FileChunk }

func (s *chunkSink) Send(ch *pb.FileChunk) error { s.chunks = append(s.chunks, ch); return nil }

func TestSendFileCompressionHeuristic(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	text := textValue(r, 4*MinChunkSize)
	random := randomValue(r, 4*MinChunkSize)
	srv := NewPeerServer(&shardMap{}, PeerServerConfig{})
	defer srv.Close()
	for _, tc := range []struct {
		name string
		data []byte
		want []pb.Compression
	}{
		{"text", text, []pb.Compression{2, 2, 2, 2}},
		{"random", random, []pb.Compression{1, 1, 1, 1}},
		// The first chunk that does not pay switches compression off for
		// the rest of the stream.
		{"text then random then text", append(append(text[:MinChunkSize:MinChunkSize], random[:MinChunkSize]...), text[:2*MinChunkSize]...),
			[]pb.Compression{2, 1, 1, 1}},
		{"tiny tail", text[:MinChunkSize+100], []pb.Compression{2, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sink chunkSink
			if err := srv.sendFile(context.Background(), &sink, bytes.NewReader(tc.data), "f", 0, int64(len(tc.data)), MinChunkSize, true, func() {}); err != nil {
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

func TestChunkDataRejects(t *testing.T) {
	data := []byte(strings.Repeat("recoverd ", 1000))
	good := func() *pb.FileChunk {
		return &pb.FileChunk{Offset: 100, Data: data, Crc32C: CRC32C(data), UncompressedLength: uint32(len(data)), Compression: pb.Compression_COMPRESSION_NONE}
	}
	if _, err := chunkData(good(), 100, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*pb.FileChunk){
		"offset":      func(c *pb.FileChunk) { c.Offset = 0 },
		"crc":         func(c *pb.FileChunk) { c.Crc32C++ },
		"length":      func(c *pb.FileChunk) { c.UncompressedLength-- },
		"zero length": func(c *pb.FileChunk) { c.UncompressedLength, c.Data = 0, nil },
		"too long":    func(c *pb.FileChunk) { c.UncompressedLength = MaxChunkSize + 1 },
		"compression": func(c *pb.FileChunk) { c.Compression = 99 },
		"bad zstd":    func(c *pb.FileChunk) { c.Compression = pb.Compression_COMPRESSION_ZSTD },
		"zstd bomb": func(c *pb.FileChunk) {
			big := make([]byte, MaxChunkSize)
			c.Data, c.Compression = compressChunk(big), pb.Compression_COMPRESSION_ZSTD
		},
	} {
		ch := good()
		mut(ch)
		if _, err := chunkData(ch, 100, int64(len(data))); !errors.Is(err, ErrChunkCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestThrottle(t *testing.T) {
	var nilT *Throttle
	if d, err := nilT.WaitN(context.Background(), 1<<30); d != 0 || err != nil || nilT.Rate() != 0 {
		t.Fatal("nil throttle must be unlimited")
	}
	th := NewThrottle(0)
	if d, _ := th.WaitN(context.Background(), 1<<30); d > 50*time.Millisecond {
		t.Fatalf("unlimited throttle waited %v", d)
	}
	// 1 MiB at 4 MiB/s with a 400 KiB burst: more than the burst (split),
	// about 150ms.
	th.SetRate(4 << 20)
	if th.Rate() != 4<<20 {
		t.Fatal(th.Rate())
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := th.WaitN(context.Background(), 256<<10); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if el < 100*time.Millisecond || el > 5*time.Second {
		t.Fatalf("1 MiB at 4 MiB/s took %v", el)
	}
	if th.Waited() <= 0 {
		t.Fatal("waited not counted")
	}
	// A wait longer than the context allows fails at once.
	th.SetRate(64 << 10)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := th.WaitN(ctx, 10<<20); err == nil {
		t.Fatal("a 160s wait within a 50ms deadline succeeded")
	}
	// Raising the rate at runtime frees waiters at the next piece.
	th.SetRate(1 << 10)
	done := make(chan time.Duration)
	go func() {
		d, _ := th.WaitN(context.Background(), 256<<10)
		done <- d
	}()
	time.Sleep(50 * time.Millisecond)
	th.SetRate(0)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("waiter not freed by an unlimited rate")
	}
}

func TestErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		err      error
		code     codes.Code
		sentinel error
	}{
		{fmt.Errorf("x: %w", seqno.ErrCompacted), codes.FailedPrecondition, seqno.ErrCompacted},
		{fmt.Errorf("x: %w", seqno.ErrLeaseLost), codes.NotFound, seqno.ErrLeaseLost},
		{fmt.Errorf("x: %w", seqno.ErrLeaseExists), codes.AlreadyExists, seqno.ErrLeaseExists},
		{fmt.Errorf("x: %w", shardstore.ErrNotFound), codes.NotFound, shardstore.ErrNotFound},
		{fmt.Errorf("x: %w", ErrHistoryMismatch), codes.FailedPrecondition, ErrHistoryMismatch},
		{fmt.Errorf("x: %w", ErrPinNotFound), codes.NotFound, ErrPinNotFound},
		{fmt.Errorf("x: %w", shardstore.ErrInvalidName), codes.InvalidArgument, nil},
		{fmt.Errorf("x: %w", shardstore.ErrClosed), codes.Unavailable, nil},
		{fmt.Errorf("x: %w", shardstore.ErrCorrupt), codes.DataLoss, nil},
		{context.Canceled, codes.Canceled, nil},
		{errors.New("disk on fire"), codes.Internal, nil},
	} {
		st := ToStatus(tc.err)
		if status.Code(st) != tc.code {
			t.Errorf("%v: code %v, want %v", tc.err, status.Code(st), tc.code)
		}
		back := FromStatus(st)
		if tc.sentinel != nil && !errors.Is(back, tc.sentinel) {
			t.Errorf("%v: %v does not wrap %v", tc.err, back, tc.sentinel)
		}
		if status.Code(back) != tc.code {
			t.Errorf("%v: round trip code %v", tc.err, status.Code(back))
		}
	}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{status.Error(codes.Unavailable, "x"), true},
		{status.Error(codes.DeadlineExceeded, "x"), true},
		{status.Error(codes.ResourceExhausted, "x"), true},
		{status.Error(codes.ResourceExhausted, "grpc: received message larger than max (16996654 vs. 16777216)"), false},
		{FromStatus(status.Error(codes.ResourceExhausted, "grpc: trying to send message larger than max (16996654 vs. 16777216)")), false},
		{status.Error(codes.Internal, "stream terminated by RST_STREAM with error code: INTERNAL_ERROR"), true},
		{status.Error(codes.Internal, "bug"), false},
		{status.Error(codes.NotFound, "x"), false},
		{status.Error(codes.InvalidArgument, "x"), false},
		{status.Error(codes.FailedPrecondition, "x"), false},
		{status.Error(codes.Canceled, "x"), false},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{fmt.Errorf("x: %w", ErrIdle), true},
		{fmt.Errorf("x: %w: %w", ErrRetriesExhausted, ErrIdle), false},
		{fmt.Errorf("x: %w", shardstore.ErrCorrupt), false},
		{fmt.Errorf("transfer: write f: %w", &fs.PathError{Op: "write", Path: "f", Err: syscall.ENOSPC}), false},
		{fmt.Errorf("append: %w", syscall.EDQUOT), false},
		{&fs.PathError{Op: "write", Path: "f", Err: syscall.EIO}, false},
		{nil, false},
	} {
		if got := IsTransient(tc.err); got != tc.want {
			t.Errorf("IsTransient(%v) = %v", tc.err, got)
		}
	}
}
