package transfer

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/zeebo/blake3"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/internal/fsutil"
	"github.com/recoverd/recoverd/internal/staging"
)

const incompressibleFiles = 3

// FetchFile implements PeerService.
func (s *PeerServer) FetchFile(req *pb.FetchFileRequest, stream pb.PeerService_FetchFileServer) error {
	return s.fetchFile(stream.Context(), req, stream, grpcChunkSize)
}

// fetchFile serves a FetchFile request on a gRPC stream or a data
// connection (dataconn.go): stream is where its chunks go, in chunks of
// at most maxChunk bytes.
func (s *PeerServer) fetchFile(ctx context.Context, req *pb.FetchFileRequest, stream chunkSender, maxChunk int) error {
	id, err := pbconv.ShardIDFromPB(req.GetShard())
	if err != nil {
		return invalid("%v", err)
	}
	if req.PinId == "" {
		return invalid("pin_id is required: pin the commit with PinCommit first")
	}
	if err := engine.ValidateName(req.Name); err != nil {
		return invalid("file name: %v", err)
	}
	if len(req.More) > maxMoreFiles {
		return invalid("%d more files asked in one stream, at most %d", len(req.More), maxMoreFiles)
	}
	for _, m := range req.More {
		if err := engine.ValidateName(m.GetName()); err != nil {
			return invalid("file name: %v", err)
		}
	}
	p, done, err := s.usePin(ctx, req.PinId, id)
	if err != nil {
		return err
	}
	defer done()
	chunk := s.cfg.ChunkSize
	if req.ChunkSize > 0 {
		chunk = max(int(req.ChunkSize), MinChunkSize)
	}
	chunk = min(chunk, maxChunk)
	zstdOK := !s.cfg.DisableCompression && req.Compression == pb.Compression_COMPRESSION_ZSTD
	buf := getChunkBuf(chunk)
	defer putChunkBuf(buf)
	fs := fileSend{stream: stream, buf: *buf, chunkSize: chunk, model: &p.compress, noGain: func() { p.incompressible.Add(1) }, sum: req.FileSums}
	if zstdOK {
		encoder() // made (and warmed up) here, not inside a probe's timing
		defer fs.releaseZbuf()
	}
	if err := s.sendPinned(ctx, p, id, &fs, req.Name, req.Offset, req.Length, zstdOK); err != nil {
		return err
	}
	for i, m := range req.More {
		fs.file = uint32(i + 1)
		if err := s.sendPinned(ctx, p, id, &fs, m.Name, m.Offset, 0, zstdOK); err != nil {
			return err
		}
	}
	return nil
}

// maxMoreFiles bounds FetchFileRequest.more.
const maxMoreFiles = 1024

// sendPinned sends [offset, offset+length) of one file of the pin
// (length 0: to its end).
func (s *PeerServer) sendPinned(ctx context.Context, p *pin, id engine.ShardID, fs *fileSend, name string, offset, length int64, zstdOK bool) error {
	meta := p.meta
	fm, ok := meta.Lookup(name)
	if !ok {
		return rpcerr.Errorf(codes.NotFound, pb.ErrorReason_FILE_NOT_FOUND, "file %s is not in commit %d of shard %s (pin %s)",
			name, meta.Generation, id, p.id)
	}
	// The bytes are read here, from the path the engine's pin hands out
	// on the shared data volume: they never cross the engine contract.
	path, err := p.pin.Path(name)
	if err != nil {
		return rpcerr.ToStatus(err)
	}
	f, err := fsutil.Open(path)
	if err != nil {
		return rpcerr.ToStatus(fmt.Errorf("open %s of pinned commit %d of %s: %w", name, meta.Generation, id, err))
	}
	defer f.Close()
	// Read ahead as cp does: the file is read once, start to end.
	_ = unix.Fadvise(int(f.Fd()), offset, 0, unix.FADV_SEQUENTIAL)
	if offset < 0 || offset > fm.Length {
		return status.Errorf(codes.OutOfRange, "offset %d is outside file %s of %d bytes", offset, fm.Name, fm.Length)
	}
	end := fm.Length
	if length < 0 || length > fm.Length-offset {
		return status.Errorf(codes.OutOfRange, "length %d from offset %d runs past the end of file %s (%d bytes)",
			length, offset, fm.Name, fm.Length)
	}
	if length > 0 {
		end = offset + length
	}
	zstdOK = zstdOK && p.incompressible.Load() < incompressibleFiles
	var sum *blake3.Hasher
	if fs.sum && end == fm.Length {
		if sum, err = hashPrefix(f, offset, fs.buf); err != nil {
			return status.Errorf(codes.Internal, "read %s before offset %d: %v", fm.Name, offset, err)
		}
	}
	return s.sendFile(ctx, fs, f, fm.Name, offset, end, zstdOK, sum)
}

// hashPrefix starts the BLAKE3 sum of a file sent from offset: the bytes
// before it are read and hashed first (only a resumed transfer asks from
// inside a file). The hasher is the pool's (staging.NewHasher): sendFile
// gives it back.
func hashPrefix(r io.ReaderAt, offset int64, buf []byte) (*blake3.Hasher, error) {
	h := staging.NewHasher()
	if offset > 0 {
		if _, err := io.CopyBuffer(h, io.NewSectionReader(r, 0, offset), buf); err != nil {
			staging.PutHasher(h)
			return nil, err
		}
	}
	return h, nil
}

// chunkSender is the part of the FetchFile server stream sendFile uses.
type chunkSender interface {
	Send(*pb.FileChunk) error
}

// fileSend is one FetchFile stream's sending state: its buffer (pooled),
// chunk size, and which of the request's files is being sent.
type fileSend struct {
	stream    chunkSender
	buf       []byte
	zbuf      *[]byte // compressed chunks go here (Send is done with them when it returns); see compressDst
	chunkSize int
	file      uint32
	sent      bool // a chunk went out on this stream
	model     *compressModel
	noGain    func() // the data turned out not to compress
	sum       bool   // the client asked for each file's BLAKE3 sum
}

// compressDst is the stream's buffer for compressed chunks, taken from the
// pool at the stream's first compression: most streams of data that does
// not compress, or of a fast link, compress nothing, and a buffer of
// 4 MiB for each of eight streams put 30-40 MiB more on the source.
func (fs *fileSend) compressDst() []byte {
	if fs.zbuf == nil {
		fs.zbuf = getChunkBuf(fs.chunkSize)
	}
	return *fs.zbuf
}

func (fs *fileSend) releaseZbuf() {
	if fs.zbuf != nil {
		putChunkBuf(fs.zbuf)
		fs.zbuf = nil
	}
}

// throttledMessageBytes bounds a chunk or an op batch while the node's
// bandwidth budget is set: the sender waits for the budget before each
// message and the receiver sees nothing meanwhile, so a message must pass
// in a fraction of a second of the budget. Otherwise a throttled source
// serving a few streams falls silent for longer than the target's idle
// deadline between two messages, and every stream is cut and resumed at
// the same offset, forever (seen with 1 MiB chunks, three files and a
// 2 MB/s budget against a 1s deadline; with the defaults, from about
// 200 KB/s down). An eighth of a second of the budget keeps eight streams
// delivering at least every second.
func (s *PeerServer) throttledMessageBytes(want int) int {
	if r := s.cfg.Throttle.Rate(); r > 0 {
		return min(want, int(max(r/8, MinChunkSize)))
	}
	return want
}

// sendFile sends [off, end) of r in chunks of fs.chunkSize raw bytes
// (fewer while the node's budget is low: throttledMessageBytes). With sum
// (the file's BLAKE3 sum up to off) it hashes what it sends and puts the sum
// on the last chunk.
func (s *PeerServer) sendFile(ctx context.Context, fs *fileSend, r io.ReaderAt, name string, off, end int64, zstdOK bool, sum *blake3.Hasher) error {
	if sum != nil {
		defer staging.PutHasher(sum)
	}
	sent := false
	for off < end {
		n := int(min(int64(s.throttledMessageBytes(fs.chunkSize)), end-off))
		raw := fs.buf[:n]
		if _, err := r.ReadAt(raw, off); err != nil {
			return status.Errorf(codes.Internal, "read %s at %d: %v", name, off, err)
		}
		ch := &pb.FileChunk{Offset: off, Crc32C: CRC32C(raw), UncompressedLength: uint32(n), Compression: pb.Compression_COMPRESSION_NONE, File: fs.file}
		if sum != nil {
			sum.Write(raw)
			if off+int64(n) == end {
				ch.FileSum = sum.Sum(nil)
			}
		}
		decided := fs.model.worthIt()
		probe := fs.model.probeNow() // do what the model does not say
		if zstdOK && n >= minCompressLen && probe != decided {
			s.c.compressionTries.Add(1)
			// A probe while the model says raw measures zstd on a sample
			// and sends the chunk raw all the same.
			in := raw
			if probe {
				in = raw[:min(n, probeSampleLen)]
			}
			t0 := time.Now()
			c := compressInto(in, fs.compressDst())
			out := len(in) // did not compress enough: counted as not at all
			if c != nil {
				out = len(c)
			}
			fs.model.compressed(len(in), out, time.Since(t0))
			switch {
			case c == nil:
				zstdOK = false // does not compress: stop trying for this file
				fs.noGain()
			case !probe:
				ch.Data, ch.Compression = c, pb.Compression_COMPRESSION_ZSTD
			}
		}
		if ch.Data == nil {
			// Send marshals the message into gRPC's own buffers (or writes
			// it to the data connection) before it returns (no stats
			// handler holds it lazily): raw is free for the next chunk once
			// Send is done.
			ch.Data = raw
		}
		t1 := time.Now()
		wait, err := s.cfg.Throttle.WaitN(ctx, len(ch.Data))
		s.c.throttleWait.Add(int64(wait))
		if err != nil {
			return status.FromContextError(err).Err()
		}
		if err := fs.stream.Send(ch); err != nil {
			return err
		}
		if ch.Compression == pb.Compression_COMPRESSION_NONE {
			fs.model.sent(len(ch.Data), time.Since(t1))
		}
		if probe {
			fs.model.probed(decided)
		}
		if !sent {
			sent = true
			s.c.files.Add(1)
			if !fs.sent {
				fs.sent = true
				s.c.fileStreams.Add(1)
			}
		}
		s.c.chunks.Add(1)
		if ch.Compression == pb.Compression_COMPRESSION_ZSTD {
			s.c.compressedChunks.Add(1)
		}
		s.c.fileBytes.Add(int64(n))
		s.c.fileWireBytes.Add(int64(len(ch.Data)))
		off += int64(n)
	}
	return nil
}
