package transfer

import (
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/internal/retry"
)

// TestSmallFilesShareStreams: small files go several per FetchFile stream.
// With one stream per file (the old client), 40 streams were opened.
func TestSmallFilesShareStreams(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 400, valueSize: 700, random: true, flushes: 40})
	files := len(src.Metadata().Files)
	e := startEnv(t, src, envOpts{})
	_, res := recoverAll(t, e, FetchOptions{Parallel: 1})
	st := e.srv.Stats()
	if st.Files != int64(files) || st.FileStreams != 1 || res.Resumes != 0 {
		t.Fatalf("%d files in %d streams (%d resumes), want %d files in 1 stream", st.Files, st.FileStreams, res.Resumes, files)
	}
}

// TestBatchResumesAtTheFileCut: a batch stream cut after a few files
// resumes at the first file not staged whole; no byte is sent twice.
func TestBatchResumesAtTheFileCut(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 400, valueSize: 700, random: true, flushes: 40})
	meta := src.Metadata()
	cut := hookSends("FetchFile", func(call, n int, _ any) error {
		if call == 1 && n > 5 {
			return status.Error(codes.Unavailable, "test: stream cut")
		}
		return nil
	})
	e := startEnv(t, src, envOpts{server: []grpc.ServerOption{cut}})
	var resumedAt []int64
	_, res := recoverAll(t, e, FetchOptions{
		Parallel: 1, ChunkSize: MinChunkSize,
		Retry:    retry.Options{Initial: 10 * time.Millisecond},
		OnResume: func(_ string, off int64, _ error) { resumedAt = append(resumedAt, off) },
	})
	if res.Resumes != 1 || len(resumedAt) != 1 {
		t.Fatalf("resumes %d at %v, want 1", res.Resumes, resumedAt)
	}
	if st := e.srv.Stats(); st.FileBytes != meta.TotalBytes() || st.FileStreams != 2 {
		t.Fatalf("server sent %d bytes of %d in %d streams: want every byte once, in 2 streams", st.FileBytes, meta.TotalBytes(), st.FileStreams)
	}
}

// TestBatchAgainstAServerSendingOneFile: a source that ignores
// FetchFileRequest.more (an older version) ends each stream after the
// first file; the client asks again for the rest, without a resume.
func TestBatchAgainstAServerSendingOneFile(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 400, valueSize: 700, random: true, flushes: 40})
	files := len(src.Metadata().Files)
	old := grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &dropMore{ServerStream: ss})
	})
	e := startEnv(t, src, envOpts{server: []grpc.ServerOption{old}})
	_, res := recoverAll(t, e, FetchOptions{Parallel: 1})
	if st := e.srv.Stats(); st.FileStreams != int64(files) || res.Resumes != 0 {
		t.Fatalf("%d streams, %d resumes for %d files: want one stream per file, no resume", st.FileStreams, res.Resumes, files)
	}
}

// dropMore receives requests as a server without FetchFileRequest.more.
type dropMore struct{ grpc.ServerStream }

func (d *dropMore) RecvMsg(m any) error {
	err := d.ServerStream.RecvMsg(m)
	if req, ok := m.(*pb.FetchFileRequest); ok {
		req.More = nil
	}
	return err
}
