package transfer

import (
	"bufio"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
)

// A slow link is not a dead one: chunks of 4 MiB on data connections take
// longer than the deadlines meant for silence, on both ends, and must not
// be cut for it.

// TestDataConnSlowLinkIsNotIdle: behind a link where a 4 MiB chunk takes
// 0.7 s, a target whose idle deadline is 0.4 s receives the file without
// one resume, since bytes keep coming (the watchdog counts reads, not
// chunks). It fails if the watchdog waits for whole chunks: every chunk
// then trips it and the transfer gives up.
func TestDataConnSlowLinkIsNotIdle(t *testing.T) {
	// One file of about 12 MB of random values: compression cannot shorten it.
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 1200, valueSize: 10000, random: true})
	e := startEnv(t, src, envOpts{tcp: true, data: true})
	e.client = startSlowProxy(t, e.addr, 6<<20).client(t, nil)
	_, res := recoverAll(t, e, FetchOptions{ChunkSize: MaxChunkSize, IdleTimeout: 400 * time.Millisecond, NoCompression: true})
	if res.Resumes != 0 {
		t.Fatalf("%d resumes behind a slow but live link", res.Resumes)
	}
	if st := e.srv.Stats(); st.DataStreams == 0 {
		t.Fatal("no data connection: the test did not test them")
	}
}

// TestDataConnSlowReaderIsNotDropped: a target that reads a 4 MiB chunk in
// 0.8 s is served whole by a source whose write deadline is 0.5 s: the
// deadline bounds each piece of a chunk (dataWritePiece), not the chunk.
// It fails if one deadline covers the whole chunk: the source then drops
// the target once the sockets' buffers are full.
func TestDataConnSlowReaderIsNotDropped(t *testing.T) {
	// One file of about 20 MB: more than the sockets' buffers hold.
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 2000, valueSize: 10000, random: true})
	e := startEnv(t, src, envOpts{tcp: true, data: true, dataCfg: DataConfig{WriteTimeout: 500 * time.Millisecond}})
	pin, info, err := PinCommit(ctxT(t), e.client, testShard, 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	f := info.Meta.Files[0]
	c := dialData(t, e.addr)
	if err := writeMessageFrame(c, frameRequest, &pb.FetchFileRequest{Shard: pbShard(), PinId: pin.ID, Name: f.Name,
		ChunkSize: MaxChunkSize}); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(time.Minute))
	r := bufio.NewReaderSize(&slowReader{c: c, piece: 128 << 10, pause: 25 * time.Millisecond}, 64<<10) // 5 MB/s
	var got int64
	for {
		kind, buf, err := readFrame(r, MaxMessageSize)
		if err != nil {
			t.Fatalf("after %d of %d bytes: %v (the source dropped a target that reads)", got, f.Length, err)
		}
		switch kind {
		case frameChunk:
			ch, err := parseFileChunk(buf.ReadOnlyData())
			if err != nil {
				t.Fatal(err)
			}
			got += int64(len(ch.Data))
			buf.Free()
			continue
		case frameEnd:
			var st spb.Status
			if err := proto.Unmarshal(buf.ReadOnlyData(), &st); err != nil {
				t.Fatal(err)
			}
			if st.Code != int32(codes.OK) {
				t.Fatalf("end frame after %d of %d bytes: %v", got, f.Length, status.FromProto(&st).Err())
			}
		default:
			t.Fatalf("frame of kind %d", kind)
		}
		break
	}
	if got != f.Length {
		t.Fatalf("received %d bytes of %d", got, f.Length)
	}
}

// slowReader reads at most piece bytes at a time, pausing before each read.
type slowReader struct {
	c     net.Conn
	piece int
	pause time.Duration
}

func (s *slowReader) Read(b []byte) (int, error) {
	time.Sleep(s.pause)
	return s.c.Read(b[:min(len(b), s.piece)])
}

// TestChunkSizeByTransport: chunks are 4 MiB by default on a data
// connection, and at most 1 MiB on a gRPC stream even when 4 MiB is asked
// for: FetchFiles asks for 1 MiB on gRPC (an older source sends what it is
// asked), and the source clamps what an older client asks for.
func TestChunkSizeByTransport(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 1200, valueSize: 10000, random: true})
	var biggest, asked atomic.Int64
	hook := hookSends("FetchFile", func(_, _ int, m any) error {
		n := int64(m.(*pb.FileChunk).UncompressedLength)
		for old := biggest.Load(); n > old && !biggest.CompareAndSwap(old, n); old = biggest.Load() {
		}
		return nil
	})
	askedFor := grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &recordAsk{ServerStream: ss, asked: &asked})
	})
	e := startEnv(t, src, envOpts{tcp: true, server: []grpc.ServerOption{hook, askedFor}})
	recoverAll(t, e, FetchOptions{ChunkSize: MaxChunkSize})
	if got := biggest.Load(); got != grpcChunkSize {
		t.Errorf("FetchFiles over gRPC asking %d: chunks of up to %d bytes, want %d", MaxChunkSize, got, grpcChunkSize)
	}
	if got := asked.Load(); got != grpcChunkSize {
		t.Errorf("FetchFiles over gRPC, configured for %d: asked the source for chunks of %d, want %d", MaxChunkSize, got, grpcChunkSize)
	}

	biggest.Store(0)
	ctx := ctxT(t)
	pin, info, err := PinCommit(ctx, e.client, testShard, 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.client.FetchFile(ctx, &pb.FetchFileRequest{Shard: pbShard(), PinId: pin.ID, Name: info.Meta.Files[0].Name, ChunkSize: MaxChunkSize})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := st.Recv(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if got := biggest.Load(); got != grpcChunkSize {
		t.Errorf("a FetchFile call over gRPC asking %d: chunks of up to %d bytes, want %d", MaxChunkSize, got, grpcChunkSize)
	}

	d := startEnv(t, src, envOpts{tcp: true, data: true})
	recoverAll(t, d, FetchOptions{})
	if s := d.srv.Stats(); s.DataStreams == 0 || s.Chunks == 0 || s.FileBytes/s.Chunks < 2<<20 {
		t.Errorf("data connections with the default chunk size: %d bytes in %d chunks, want chunks of %d", s.FileBytes, s.Chunks, DefaultChunkSize)
	}
}

// recordAsk keeps the chunk size of the last FetchFileRequest received.
type recordAsk struct {
	grpc.ServerStream
	asked *atomic.Int64
}

func (r *recordAsk) RecvMsg(m any) error {
	err := r.ServerStream.RecvMsg(m)
	if req, ok := m.(*pb.FetchFileRequest); ok && err == nil {
		r.asked.Store(int64(req.ChunkSize))
	}
	return err
}
