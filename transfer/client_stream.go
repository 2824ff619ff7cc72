package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/internal/staging"
)

// One FetchFile stream of FetchFiles: the request for a group's files,
// and the chunks received, checked and written.

// chunkStream is the part of the FetchFile client stream streamOnce reads:
// RecvMsg with a *recvChunk (chunkCodec).
type chunkStream interface {
	RecvMsg(m any) error
}

// streamOnce runs one FetchFile stream for the files of todo, each from
// its offset, advancing their offsets as bytes are verified and written.
// It returns how many files of todo it staged whole and verified; its
// error is nil when the stream ended cleanly after a whole file.
func (f *fetcher) streamOnce(ctx context.Context, todo []pending) (int, error) {
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	wd := newWatchdog(f.opts.IdleTimeout, cancel)
	defer wd.disarm()
	comp := pb.Compression_COMPRESSION_ZSTD
	if f.opts.NoCompression {
		comp = pb.Compression_COMPRESSION_NONE
	}
	req := &pb.FetchFileRequest{
		Shard: pbconv.ShardID(f.shard), PinId: f.pin.ID, Name: todo[0].meta.Name, Offset: todo[0].off,
		ChunkSize: uint32(f.chunkSize()), Compression: comp, FileSums: true,
	}
	for _, p := range todo[1:] {
		req.More = append(req.More, &pb.FileRange{Name: p.meta.Name, Offset: p.off})
	}
	wd.arm()
	st, closeStream, err := f.open(sctx, req, wd)
	wd.disarm()
	if err != nil {
		return 0, streamErr(sctx, f.opts.IdleTimeout, err)
	}
	defer closeStream()
	return f.receive(ctx, sctx, st, wd, todo)
}

// open starts a FetchFile: on a data connection when the client can open
// them (Peers.EnableData) and the source serves them, else over gRPC.
// closeStream ends it (cancelling sctx ends either too). On a data
// connection every read that brings bytes re-arms wd: a 4 MiB chunk
// behind a slow link is progress, not silence (gRPC's chunks are 1 MiB
// at most, and its watchdog is re-armed by message).
func (f *fetcher) open(sctx context.Context, req *pb.FetchFileRequest, wd *watchdog) (st chunkStream, closeStream func(), err error) {
	if f.data != nil && !f.noData.Load() {
		ds, err := f.data.fetch(sctx, req, wd.arm)
		if err == nil {
			return ds, ds.close, nil
		}
		if !errors.Is(err, errNoDataConn) {
			return nil, nil, err
		}
		f.noData.Store(true) // for the rest of this call
	}
	if req.ChunkSize == 0 || req.ChunkSize > grpcChunkSize {
		req.ChunkSize = grpcChunkSize // what the source would send on gRPC anyway (an older one sends what it is asked)
	}
	gs, err := f.c.FetchFile(sctx, req, grpc.ForceCodecV2(chunkCodec{}))
	return gs, func() {}, err
}

// chunkSize is the chunk size to ask for (0: the source's default): at
// most an eighth of a second of this node's budget while it is set, as the
// source does with its own (throttledMessageBytes), so that progress is
// seen and a cut loses little under a low budget.
func (f *fetcher) chunkSize() int {
	r := f.opts.Throttle.Rate()
	if r <= 0 {
		return f.opts.ChunkSize
	}
	c := int(min(max(r/8, MinChunkSize), MaxChunkSize))
	if f.opts.ChunkSize > 0 {
		c = min(c, f.opts.ChunkSize)
	}
	return c
}

// receive reads chunks from st into the files of todo, in order, until
// they are complete or the stream ends.
func (f *fetcher) receive(ctx, sctx context.Context, st chunkStream, wd *watchdog, todo []pending) (int, error) {
	var (
		sf *staging.File
		rc recvChunk
	)
	defer func() {
		if sf != nil {
			sf.Close()
		}
		rc.release()
	}()
	fresh := true // no chunk of todo[i] came in this stream yet
	for i := 0; i < len(todo); {
		p := &todo[i]
		if sf == nil {
			var err error
			if sf, err = f.area.CreateFile(p.meta); err != nil {
				return i, fmt.Errorf("transfer: stage file %s: %w", p.meta.Name, err)
			}
		}
		wd.arm()
		rc.release() // the last chunk is written: its buffer goes back
		err := st.RecvMsg(&rc)
		wd.disarm()
		ch := rc.ch
		if err == io.EOF {
			if i > 0 && fresh { // a server that sends one file per stream
				return i, nil
			}
			return i, fmt.Errorf("%w: file %s at offset %d of %d", ErrShortStream, p.meta.Name, p.off, p.meta.Length)
		}
		if err != nil {
			return i, streamErr(sctx, f.opts.IdleTimeout, err)
		}
		if ch.File != uint32(i) {
			return i, fmt.Errorf("%w: chunk of file #%d of the stream, expected #%d (%s)", ErrChunkCorrupt, ch.File, i, p.meta.Name)
		}
		data, err := chunkData(ch, p.off, p.meta.Length-p.off)
		if err != nil {
			return i, err
		}
		if err := f.throttle(ctx, len(ch.Data)); err != nil {
			return i, err
		}
		if _, err := sf.WriteAtDirect(data, p.off); err != nil {
			return i, fmt.Errorf("transfer: write %s at %d: %w", p.meta.Name, p.off, err)
		}
		p.off += int64(len(data))
		fresh = false
		sf.MarkGood(p.off)
		f.bytes.Add(int64(len(data)))
		f.wire.Add(int64(len(ch.Data)))
		if f.opts.OnBytes != nil {
			f.opts.OnBytes(p.meta.Name, int64(len(data)))
		}
		if p.off < p.meta.Length {
			continue
		}
		err = sf.Verify()
		if err == nil && len(ch.FileSum) > 0 {
			_, err = sf.MatchSum(ch.FileSum)
			f.summedFile(sf)
		}
		if err == nil {
			sf.SyncBehind()
		}
		sf.Close()
		sf = nil
		if err != nil {
			return i, wholeErr{fmt.Errorf("transfer: file %s was received whole but does not verify: %w", p.meta.Name, err)}
		}
		f.files.Add(1)
		if f.opts.OnFileDone != nil {
			f.opts.OnFileDone(p.meta)
		}
		i, fresh = i+1, true
	}
	// Let the stream end cleanly (trailers) rather than cancel it; what
	// comes after the last byte changes nothing.
	wd.arm()
	_ = st.RecvMsg(&rc)
	wd.disarm()
	return len(todo), nil
}
