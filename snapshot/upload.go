package snapshot

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	"golang.org/x/sync/errgroup"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/shardstore"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// uploadAll uploads files of the pinned commit to their blob keys.
func uploadAll(ctx context.Context, repo Repository, ref engine.Pin, files []FileEntry, opts CreateOptions) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Concurrency)
	for _, f := range files {
		g.Go(func() error {
			if err := upload(gctx, repo, ref, f, opts); err != nil {
				return fmt.Errorf("upload %s to %s: %w", f.Name, f.Blob, err)
			}
			return nil
		})
	}
	return g.Wait()
}

func upload(ctx context.Context, repo Repository, ref engine.Pin, f FileEntry, opts CreateOptions) error {
	file, err := openPinned(ref, f.Name)
	if err != nil {
		return err
	}
	defer file.Close()
	return retryCall(ctx, opts.Retry, func(ctx context.Context) error {
		var r io.Reader = newVerifyingReader(io.NewSectionReader(file, 0, f.Length), f.FileMeta)
		if opts.Throttle != nil || opts.OnBytes != nil {
			r = &meteredReader{ctx: ctx, r: r, name: f.Name, throttle: opts.Throttle, onBytes: opts.OnBytes}
		}
		return repo.Put(ctx, f.Blob, r, f.Length)
	})
}

// verifyingReader checks, as the bytes stream by, that a file has the
// length and CRC32C its metadata records (the CRC32C of all bytes but the
// last four, which hold it little-endian). The Read that would complete
// the file fails with ErrChecksum instead on a mismatch, so a damaged local
// file is never stored.
type verifyingReader struct {
	r    io.Reader
	meta shardstore.FileMeta
	crc  hash.Hash32
	off  int64
	tail [4]byte
}

func newVerifyingReader(r io.Reader, meta shardstore.FileMeta) *verifyingReader {
	return &verifyingReader{r: r, meta: meta, crc: crc32.New(castagnoli)}
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.off >= v.meta.Length {
		return 0, io.EOF
	}
	if int64(len(p)) > v.meta.Length-v.off {
		p = p[:v.meta.Length-v.off]
	}
	n, err := v.r.Read(p)
	v.consume(p[:n])
	if v.off == v.meta.Length || err == io.EOF {
		// The last bytes are withheld on a mismatch: a consumer that stops
		// once it has Length bytes would not see an error after them.
		if cerr := v.check(); cerr != nil {
			return 0, cerr
		}
		if err == nil && v.off == v.meta.Length {
			err = io.EOF
		}
	}
	return n, err
}

func (v *verifyingReader) consume(b []byte) {
	body := v.meta.Length - 4
	for len(b) > 0 {
		if v.off < body {
			k := int(min(int64(len(b)), body-v.off))
			v.crc.Write(b[:k])
			b, v.off = b[k:], v.off+int64(k)
			continue
		}
		if v.off < v.meta.Length {
			v.tail[v.off-body] = b[0]
		}
		b, v.off = b[1:], v.off+1
	}
}

func (v *verifyingReader) check() error {
	if v.off != v.meta.Length {
		return fmt.Errorf("%w: file %s: %d bytes read, %d expected", ErrChecksum, v.meta.Name, v.off, v.meta.Length)
	}
	got, footer := v.crc.Sum32(), binary.LittleEndian.Uint32(v.tail[:])
	if got != v.meta.CRC32C || footer != v.meta.CRC32C {
		return fmt.Errorf("%w: file %s: CRC32C %08x, footer %08x, expected %08x", ErrChecksum, v.meta.Name, got, footer, v.meta.CRC32C)
	}
	return nil
}

// meteredReader calls the throttle and progress hooks for every chunk.
type meteredReader struct {
	ctx      context.Context
	r        io.Reader
	name     string
	throttle func(ctx context.Context, n int) error
	onBytes  func(file string, n int64)
}

func (m *meteredReader) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	if n > 0 {
		if m.throttle != nil {
			if terr := m.throttle(m.ctx, n); terr != nil {
				return 0, terr
			}
		}
		if m.onBytes != nil {
			m.onBytes(m.name, int64(n))
		}
	}
	return n, err
}
