package transfer

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/shardstore"
)

// recoverAll pins the source commit, fetches every file into a fresh target
// and publishes it; it returns the target and the fetch result.
func recoverAll(t *testing.T, e *env, opts FetchOptions) (*shardstore.Shard, FetchResult) {
	t.Helper()
	ctx := ctxT(t)
	pin, info, err := PinCommit(ctx, e.client, testShard, 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer ReleasePin(ctx, e.client, pin.ID)
	tgt, st := newTarget(t, "rec-1")
	res, err := FetchFiles(ctx, e.client, testShard, pin, info.Meta.Files, st.Area, opts)
	if err != nil {
		t.Fatalf("FetchFiles: %v (result %+v)", err, res)
	}
	if res.Files != len(info.Meta.Files) || res.Bytes != info.Meta.TotalBytes() {
		t.Fatalf("fetched %d files, %d bytes; want %d files, %d bytes", res.Files, res.Bytes, len(info.Meta.Files), info.Meta.TotalBytes())
	}
	if err := st.Publish(info.Meta.Files, info.Meta.Commit); err != nil {
		t.Fatal(err)
	}
	if got, want := mustDigest(t, tgt), mustDigest(t, e.src); got != want {
		t.Fatalf("target digest %s, source %s", got, want)
	}
	return tgt, res
}

func TestFetchFilesOverTCP(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 3000, valueSize: 700, flushes: 3})
	e := startEnv(t, src, envOpts{tcp: true})
	var onBytes atomic.Int64
	var done atomic.Int32
	_, res := recoverAll(t, e, FetchOptions{
		OnBytes:    func(_ string, n int64) { onBytes.Add(n) },
		OnFileDone: func(shardstore.FileMeta) { done.Add(1) },
	})
	if res.Resumes != 0 {
		t.Errorf("resumes = %d on a healthy connection", res.Resumes)
	}
	if onBytes.Load() != res.Bytes || int(done.Load()) != res.Files {
		t.Errorf("callbacks saw %d bytes, %d files; result %+v", onBytes.Load(), done.Load(), res)
	}
	if st := e.srv.Stats(); st.FileBytes != res.Bytes || st.FileWireBytes != res.WireBytes {
		t.Errorf("server sent %d raw / %d wire bytes, client got %d / %d", st.FileBytes, st.FileWireBytes, res.Bytes, res.WireBytes)
	}
}

func TestResumeAfterStreamCut(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 1500, valueSize: 700, random: true})
	meta := src.Metadata()
	if len(meta.Files) != 1 || meta.Files[0].Length < 10*MinChunkSize {
		t.Fatalf("want one file of at least 10 chunks, got %+v", meta.Files)
	}
	// The first stream dies after 3 chunks, as a connection would.
	cut := hookSends("FetchFile", func(call, n int, _ any) error {
		if call == 1 && n > 3 {
			return status.Error(codes.Unavailable, "test: stream cut")
		}
		return nil
	})
	// A pin TTL shorter than the backoff: the pin survives only because
	// FetchFiles renews it. (A TTL of 150ms expired between two renewals
	// on a loaded machine, under -race.)
	e := startEnv(t, src, envOpts{cfg: PeerServerConfig{PinTTL: time.Second}, server: []grpc.ServerOption{cut}})
	var resumedAt []int64
	_, res := recoverAll(t, e, FetchOptions{
		ChunkSize: MinChunkSize,
		Retry:     retry.Options{Initial: 2500 * time.Millisecond},
		OnResume:  func(_ string, off int64, _ error) { resumedAt = append(resumedAt, off) },
	})
	if res.Resumes != 1 || len(resumedAt) != 1 || resumedAt[0] != 3*MinChunkSize {
		t.Fatalf("resumes %d at %v, want 1 at %d", res.Resumes, resumedAt, 3*MinChunkSize)
	}
	if st := e.srv.Stats(); st.FileBytes != meta.TotalBytes() {
		t.Fatalf("server sent %d bytes for a %d-byte file: verified bytes were sent again", st.FileBytes, meta.TotalBytes())
	}
}

func TestResumeAfterConnectionReset(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 3000, valueSize: 1000, random: true, flushes: 2})
	e := startEnv(t, src, envOpts{tcp: true})
	// The first TCP connection is reset after about 1 MiB: every stream on
	// it fails, the client reconnects and each file resumes.
	px := startProxy(t, e.addr, 0, &proxyFault{at: 1 << 20})
	conn, err := grpc.NewClient(px.addr(), append(DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	e.client = pb.NewPeerServiceClient(conn)
	_, res := recoverAll(t, e, FetchOptions{Retry: retry.Options{Initial: 10 * time.Millisecond}})
	if res.Resumes == 0 {
		t.Fatal("no resume after a connection reset")
	}
	t.Logf("result %+v; server sent %d bytes", res, e.srv.Stats().FileBytes)
}

func TestCorruptChunkRefetched(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt func(ch *pb.FileChunk)
	}{
		{"bad crc", func(ch *pb.FileChunk) { ch.Crc32C ^= 1 }},
		{"wrong offset", func(ch *pb.FileChunk) { ch.Offset += 10 }},
		{"flipped byte", func(ch *pb.FileChunk) { ch.Data[len(ch.Data)/2] ^= 0x40 }},
		{"bad zstd", func(ch *pb.FileChunk) { ch.Compression = pb.Compression_COMPRESSION_ZSTD }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 400, valueSize: 700, random: true})
			hook := hookSends("FetchFile", func(call, n int, m any) error {
				if call == 1 && n == 2 {
					tc.corrupt(m.(*pb.FileChunk))
				}
				return nil
			})
			e := startEnv(t, src, envOpts{server: []grpc.ServerOption{hook}})
			_, res := recoverAll(t, e, FetchOptions{ChunkSize: MinChunkSize, Retry: retry.Options{Initial: time.Millisecond}})
			if res.Resumes != 1 {
				t.Fatalf("resumes = %d, want 1", res.Resumes)
			}
		})
	}
}

func TestCorruptChunkRepeatedGivesUp(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 400, valueSize: 700, random: true})
	hook := hookSends("FetchFile", func(_, _ int, m any) error {
		if ch := m.(*pb.FileChunk); ch.Offset == MinChunkSize {
			ch.Crc32C ^= 1
		}
		return nil
	})
	e := startEnv(t, src, envOpts{server: []grpc.ServerOption{hook}})
	ctx := ctxT(t)
	pin, info, err := PinCommit(ctx, e.client, testShard, 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	_, st := newTarget(t, "rec-1")
	res, err := FetchFiles(ctx, e.client, testShard, pin, info.Meta.Files, st.Area, FetchOptions{ChunkSize: MinChunkSize, Retry: retry.Options{Initial: time.Millisecond}})
	name := info.Meta.Files[0].Name
	if !errors.Is(err, shardstore.ErrCorrupt) || !strings.Contains(err.Error(), name) || retry.IsTransient(err) {
		t.Fatalf("err = %v; want a permanent ErrCorrupt naming %s", err, name)
	}
	if res.Resumes != defaultMaxCorruptRepeats-1 {
		t.Fatalf("resumes = %d, want %d", res.Resumes, defaultMaxCorruptRepeats-1)
	}
}

func TestCompressionOnlyWhenItPays(t *testing.T) {
	for _, tc := range []struct {
		name         string
		random       bool
		noCompress   bool
		wantCompress bool
	}{
		{"text", false, false, true},
		{"random", true, false, false},
		{"text refused by client", false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 300, valueSize: 1000, random: tc.random})
			// A source throttled to 256 KB/s: a link slower than zstd (even
			// under the race detector), where compression pays
			// (adaptive.go). Chunks of 64 KiB: an eighth of a second.
			e := startEnv(t, src, envOpts{cfg: PeerServerConfig{Throttle: NewThrottle(256e3)}})
			_, res := recoverAll(t, e, FetchOptions{ChunkSize: 64 << 10, NoCompression: tc.noCompress})
			st := e.srv.Stats()
			t.Logf("raw %d bytes, wire %d bytes, %d of %d chunks compressed", st.FileBytes, st.FileWireBytes, st.CompressedChunks, st.Chunks)
			if res.WireBytes != st.FileWireBytes {
				t.Errorf("client counted %d wire bytes, server %d", res.WireBytes, st.FileWireBytes)
			}
			if tc.wantCompress {
				// The first chunk is sent raw (a probe compresses a sample
				// of it), the second too (measuring the link), the rest
				// compressed.
				if st.FileWireBytes*4 > st.FileBytes*3 || st.CompressedChunks < st.Chunks-2 {
					t.Fatalf("text sent as %d wire bytes for %d raw: not compressed", st.FileWireBytes, st.FileBytes)
				}
				return
			}
			if st.FileWireBytes != st.FileBytes || st.CompressedChunks != 0 {
				t.Fatalf("sent %d wire bytes for %d raw, %d chunks compressed: want raw", st.FileWireBytes, st.FileBytes, st.CompressedChunks)
			}
		})
	}
}

// TestIncompressibleFilesStopTheTries: once a few files of a pin proved
// incompressible, the others are sent raw without a compression attempt.
func TestIncompressibleFilesStopTheTries(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 400, valueSize: 1000, random: true, flushes: 10})
	e := startEnv(t, src, envOpts{})
	recoverAll(t, e, FetchOptions{ChunkSize: 1 << 20, Parallel: 1})
	st := e.srv.Stats()
	if st.Files != 10 || st.CompressionTries > incompressibleFiles || st.CompressedChunks != 0 {
		t.Fatalf("%d files sent, compression tried on %d chunks, want %d", st.Files, st.CompressionTries, incompressibleFiles)
	}
}

func TestThrottleHonoured(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 2500, valueSize: 1000, random: true})
	total := src.Metadata().TotalBytes()
	const rate = 2 << 20
	thr := NewThrottle(rate)
	e := startEnv(t, src, envOpts{cfg: PeerServerConfig{Throttle: thr}})
	start := time.Now()
	_, res := recoverAll(t, e, FetchOptions{})
	elapsed := time.Since(start)
	// The bucket starts full (burst), so the floor is (total-burst)/rate.
	floor := time.Duration(float64(total-int64(burstFor(rate))) / rate * float64(time.Second))
	t.Logf("%d bytes at %d B/s took %v (floor %v), server waited %v", total, rate, elapsed, floor, e.srv.Stats().ThrottleWait)
	if elapsed < floor*8/10 {
		t.Fatalf("%d bytes at %d B/s took %v, want at least %v", total, rate, elapsed, floor)
	}
	if elapsed > floor*10+10*time.Second {
		t.Fatalf("took %v, far beyond %v", elapsed, floor)
	}
	if e.srv.Stats().ThrottleWait <= 0 || thr.Waited() <= 0 || res.ThrottleWait != 0 {
		t.Fatalf("throttle wait: server %v, throttle %v, client %v", e.srv.Stats().ThrottleWait, thr.Waited(), res.ThrottleWait)
	}
}

func TestReceiveThrottle(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 1200, valueSize: 1000, random: true})
	total := src.Metadata().TotalBytes()
	e := startEnv(t, src, envOpts{})
	const rate = 2 << 20
	var seen atomic.Int64
	start := time.Now()
	_, res := recoverAll(t, e, FetchOptions{Throttle: NewThrottle(rate), OnThrottle: func(d time.Duration) { seen.Add(int64(d)) }})
	elapsed := time.Since(start)
	floor := time.Duration(float64(total-int64(burstFor(rate))) / rate * float64(time.Second))
	if elapsed < floor*8/10 || res.ThrottleWait <= 0 || time.Duration(seen.Load()) != res.ThrottleWait {
		t.Fatalf("took %v (floor %v), throttle wait %v, callbacks %v", elapsed, floor, res.ThrottleWait, time.Duration(seen.Load()))
	}
}

func TestPinReleasedWhenClientVanishes(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 600, valueSize: 200, flushes: 2})
	e := startEnv(t, src, envOpts{cfg: PeerServerConfig{PinTTL: 200 * time.Millisecond}})
	ctx := ctxT(t)
	pin, info, err := PinCommit(ctx, e.client, testShard, 0, "vanishing")
	if err != nil {
		t.Fatal(err)
	}
	if pin.TTL != 200*time.Millisecond || pin.Generation != info.Meta.Generation {
		t.Fatalf("pin %+v for generation %d", pin, info.Meta.Generation)
	}
	// A merge replaces every file; the pinned ones must stay on disk.
	if err := src.Merge(); err != nil {
		t.Fatal(err)
	}
	old := info.Meta.Files[0].Name
	if _, err := os.Stat(filepath.Join(src.Path(), old)); err != nil || !src.Pinned(old) {
		t.Fatalf("pinned file %s gone after a merge: %v", old, err)
	}
	// The client never renews nor releases: the pin must go by itself.
	deadline := time.Now().Add(10 * time.Second)
	for e.srv.Stats().Pins > 0 {
		if time.Now().After(deadline) {
			t.Fatal("pin still held 10s after its 200ms TTL")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := e.srv.Stats(); st.PinsExpired != 1 {
		t.Fatalf("pins expired = %d", st.PinsExpired)
	}
	if _, err := os.Stat(filepath.Join(src.Path(), old)); !errors.Is(err, os.ErrNotExist) || src.Pinned(old) {
		t.Fatalf("file %s of the expired pin still on disk (%v)", old, err)
	}
	_, err = RenewPin(ctx, e.client, pin.ID)
	if !errors.Is(err, ErrPinNotFound) || status.Code(err) != codes.NotFound {
		t.Fatalf("renew of an expired pin: %v", err)
	}
	// Fetching under it is refused too.
	_, st := newTarget(t, "rec-2")
	_, err = FetchFiles(ctx, e.client, testShard, pin, info.Meta.Files, st.Area, FetchOptions{})
	if !errors.Is(err, ErrPinNotFound) {
		t.Fatalf("fetch under an expired pin: %v", err)
	}
}

func TestPinReleaseWaitsForStreams(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 2000, valueSize: 200})
	unblock := make(chan struct{})
	hold := hookSends("FetchFile", func(_, n int, _ any) error {
		if n == 2 {
			<-unblock
		}
		return nil
	})
	e := startEnv(t, src, envOpts{server: []grpc.ServerOption{hold}})
	ctx := ctxT(t)
	pin, info, err := PinCommit(ctx, e.client, testShard, time.Hour, "test")
	if err != nil {
		t.Fatal(err)
	}
	if pin.TTL != defaultMaxPinTTL {
		t.Errorf("asked 1h, granted %v; want the %v bound", pin.TTL, defaultMaxPinTTL)
	}
	name := info.Meta.Files[0].Name
	stream, err := e.client.FetchFile(ctx, &pb.FetchFileRequest{Shard: pbShard(), PinId: pin.ID, Name: name, ChunkSize: MinChunkSize})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	if err := ReleasePin(ctx, e.client, pin.ID); err != nil {
		t.Fatal(err)
	}
	if err := ReleasePin(ctx, e.client, pin.ID); err != nil {
		t.Fatalf("second release: %v", err)
	}
	if !src.Pinned(name) || e.srv.Stats().Pins != 0 {
		t.Fatal("file unpinned while a stream still reads it, or the pin still listed")
	}
	close(unblock)
	n := 1
	for {
		if _, err := stream.Recv(); err != nil {
			if err != io.EOF {
				t.Fatalf("stream under a released pin: %v", err)
			}
			break
		}
		n++
	}
	if want := int((info.Meta.Files[0].Length + MinChunkSize - 1) / MinChunkSize); n != want {
		t.Fatalf("got %d chunks, want %d", n, want)
	}
	deadline := time.Now().Add(5 * time.Second)
	for src.Pinned(name) {
		if time.Now().After(deadline) {
			t.Fatal("file still pinned after the last stream ended")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAlreadyStagedFileNotFetchedAgain(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 500, valueSize: 300, flushes: 2})
	e := startEnv(t, src, envOpts{})
	ctx := ctxT(t)
	pin, info, err := PinCommit(ctx, e.client, testShard, 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	_, st := newTarget(t, "rec-1")
	if _, err := FetchFiles(ctx, e.client, testShard, pin, info.Meta.Files[:1], st.Area, FetchOptions{}); err != nil {
		t.Fatal(err)
	}
	before := e.srv.Stats().FileBytes
	res, err := FetchFiles(ctx, e.client, testShard, pin, info.Meta.Files, st.Area, FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.AlreadyStaged != 1 || res.Files != len(info.Meta.Files)-1 {
		t.Fatalf("result %+v", res)
	}
	if sent := e.srv.Stats().FileBytes - before; sent != info.Meta.TotalBytes()-info.Meta.Files[0].Length {
		t.Fatalf("second fetch sent %d bytes", sent)
	}
}

// A FetchFiles call that failed for good part way (the source lost its pin
// when it restarted) leaves checked prefixes; the next call of the same
// recovery, under a new pin, asks only for the rest of each file.
func TestPartlyStagedFileResumesUnderANewPin(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 1500, valueSize: 700, random: true})
	meta := src.Metadata()
	// The first stream fails for good after 3 chunks, as a pin lost would.
	fail := hookSends("FetchFile", func(call, n int, _ any) error {
		if call == 1 && n > 3 {
			return status.Error(codes.NotFound, "test: pin gone")
		}
		return nil
	})
	e := startEnv(t, src, envOpts{server: []grpc.ServerOption{fail}})
	ctx := ctxT(t)
	_, st := newTarget(t, "rec-1")
	pin, info, err := PinCommit(ctx, e.client, testShard, 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := FetchFiles(ctx, e.client, testShard, pin, info.Meta.Files, st.Area, FetchOptions{ChunkSize: MinChunkSize}); status.Code(err) != codes.NotFound {
		t.Fatalf("first attempt: %v", err)
	}
	ReleasePin(ctx, e.client, pin.ID)
	sentBefore := e.srv.Stats().FileBytes
	pin, info, err = PinCommit(ctx, e.client, testShard, 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer ReleasePin(ctx, e.client, pin.ID)
	var reported atomic.Int64
	res, err := FetchFiles(ctx, e.client, testShard, pin, info.Meta.Files, st.Area, FetchOptions{ChunkSize: MinChunkSize,
		OnBytes: func(_ string, n int64) { reported.Add(n) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.ResumedBytes != 3*MinChunkSize {
		t.Fatalf("resumed %d bytes, want the 3 chunks checked by the first attempt (%d)", res.ResumedBytes, 3*MinChunkSize)
	}
	if sent := e.srv.Stats().FileBytes - sentBefore; sent != meta.TotalBytes()-3*MinChunkSize {
		t.Fatalf("the second attempt sent %d bytes of a %d-byte file after 3 chunks were checked", sent, meta.TotalBytes())
	}
	if reported.Load() != meta.TotalBytes() {
		t.Fatalf("OnBytes reported %d bytes, want the whole file (%d) with the resumed prefix", reported.Load(), meta.TotalBytes())
	}
	if err := st.Publish(info.Meta.Files, info.Meta.Commit); err != nil {
		t.Fatal(err)
	}
}

// A throttled source sends chunks of at most an eighth of a second of its
// budget, whatever the client asked: with whole 1 MiB chunks a few streams
// sharing a low budget fell silent past the target's idle deadline between
// two chunks and were cut and resumed at the same offset forever.
func TestThrottledSourceSendsSmallChunks(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 1500, valueSize: 700, random: true})
	e := startEnv(t, src, envOpts{cfg: PeerServerConfig{Throttle: NewThrottle(1 << 20)}})
	ctx := ctxT(t)
	pin, info, err := PinCommit(ctx, e.client, testShard, 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer ReleasePin(ctx, e.client, pin.ID)
	f := info.Meta.Files[0]
	st, err := e.client.FetchFile(ctx, &pb.FetchFileRequest{Shard: pbShard(), PinId: pin.ID, Name: f.Name, ChunkSize: MaxChunkSize})
	if err != nil {
		t.Fatal(err)
	}
	var got int64
	for {
		ch, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ch.UncompressedLength > 128<<10 {
			t.Fatalf("a chunk of %d bytes from a source throttled to 1 MiB/s", ch.UncompressedLength)
		}
		got += int64(ch.UncompressedLength)
	}
	if got != f.Length {
		t.Fatalf("received %d of %d bytes", got, f.Length)
	}
	// Without a budget the client's chunk size stands, up to what a gRPC
	// stream carries.
	e.srv.cfg.Throttle.SetRate(0)
	st, err = e.client.FetchFile(ctx, &pb.FetchFileRequest{Shard: pbShard(), PinId: pin.ID, Name: f.Name, ChunkSize: MaxChunkSize})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if want := min(f.Length, grpcChunkSize); int64(ch.UncompressedLength) != want {
		t.Fatalf("unthrottled chunk of %d bytes, want %d", ch.UncompressedLength, want)
	}
}
