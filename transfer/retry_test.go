package transfer

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/shardstore"
)

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

// RecvMsg is Recv for the client's chunkCodec.
func (s *fakeStream) RecvMsg(m any) error {
	ch, err := s.Recv()
	if err == nil {
		m.(*recvChunk).ch = ch
	}
	return err
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
	res, err := FetchFiles(ctxT(t), fc, testShard, Pin{ID: "p"}, []shardstore.FileMeta{meta}, st.Area,
		FetchOptions{IdleTimeout: 100 * time.Millisecond, Retry: retry.Options{Initial: time.Millisecond}})
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
	_, err := FetchFiles(ctxT(t), fc, testShard, Pin{ID: "p"}, []shardstore.FileMeta{meta}, st.Area,
		FetchOptions{IdleTimeout: 20 * time.Millisecond, Retry: retry.Options{Initial: time.Millisecond, MaxRetries: 3}})
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
	_, err = FetchFiles(ctxT(t), fc2, testShard, Pin{ID: "p"}, []shardstore.FileMeta{meta}, st2.Area, FetchOptions{Retry: retry.Options{Initial: time.Millisecond}})
	if !errors.Is(err, shardstore.ErrCorrupt) || !strings.Contains(err.Error(), "seg_idle") {
		t.Fatalf("stuck server: %v", err)
	}
}

func TestTransientBudget(t *testing.T) {
	_, meta := fileWithFooter("seg_x", 2*MinChunkSize)
	var calls atomic.Int32
	fc := &failingFiles{err: status.Error(codes.Unavailable, "down"), calls: &calls}
	_, st := newTarget(t, "rec-1")
	_, err := FetchFiles(ctxT(t), fc, testShard, Pin{ID: "p"}, []shardstore.FileMeta{meta}, st.Area,
		FetchOptions{Retry: retry.Options{Initial: time.Millisecond, Max: 2 * time.Millisecond, MaxRetries: 4}})
	if !errors.Is(err, ErrRetriesExhausted) || retry.IsTransient(err) || calls.Load() != 5 {
		t.Fatalf("err %v after %d calls", err, calls.Load())
	}
	calls.Store(0)
	fc.err = status.Error(codes.NotFound, "gone")
	_, err = FetchFiles(ctxT(t), fc, testShard, Pin{ID: "p"}, []shardstore.FileMeta{meta}, st.Area, FetchOptions{})
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
	_, err := FetchFiles(ctx, fc, testShard, Pin{ID: "p"}, []shardstore.FileMeta{meta}, st.Area, FetchOptions{IdleTimeout: time.Hour})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled fetch: %v", err)
	}
}
