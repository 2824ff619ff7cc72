package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/internal/staging"
)

// Downloader fetches snapshot files into a shard's staging directory for a
// recovery. Set the fields, then use it from any number of goroutines; the
// zero value uses the defaults. It never decides a fallback: it reports the
// failure, named, and leaves nothing partial behind.
type Downloader struct {
	// PartSize is the size of the ranged GETs a file is split into
	// (default 16 MiB).
	PartSize int64
	// PartConcurrency is the number of parts of one file fetched at once
	// (default 4).
	PartConcurrency int
	// FileConcurrency is the number of files fetched at once (default 4).
	FileConcurrency int
	// Retry is the policy of transient errors; zero fields are
	// retry.Repository's (from 100ms up to 5s between attempts, for 30s
	// without progress). Its budget bounds the time one part keeps
	// retrying without making progress.
	Retry retry.Options
	// PartTimeout is the deadline of one attempt at one part, throttle
	// waits included (default 10 minutes). A repository also fails a body
	// read that gets no byte for its idle timeout (S3Options.ReadIdleTimeout).
	PartTimeout time.Duration
	// Throttle, when set, is called with the size of every chunk received
	// before it is written; it blocks to slow the download or fails to
	// stop it. The recovery layer shares one budget with peer transfers.
	Throttle func(ctx context.Context, n int) error
	// OnBytes, when set, is called with every chunk written (never twice
	// for the same bytes: a resumed part continues where it stopped).
	OnBytes func(file string, n int64)

	bytes, files, retries atomic.Int64
}

// DownloadStats are a Downloader's cumulative counters.
type DownloadStats struct {
	Bytes   int64 // bytes written into staging
	Files   int64 // files downloaded and verified
	Retries int64 // attempts retried after a transient error
}

// Stats returns the cumulative counters.
func (d *Downloader) Stats() DownloadStats {
	return DownloadStats{Bytes: d.bytes.Load(), Files: d.files.Load(), Retries: d.retries.Load()}
}

func (d *Downloader) partSize() int64 {
	if d.PartSize > 0 {
		return d.PartSize
	}
	return 16 << 20
}

func (d *Downloader) partConcurrency() int {
	if d.PartConcurrency > 0 {
		return d.PartConcurrency
	}
	return 4
}

func (d *Downloader) fileConcurrency() int {
	if d.FileConcurrency > 0 {
		return d.FileConcurrency
	}
	return 4
}

func (d *Downloader) partTimeout() time.Duration {
	if d.PartTimeout > 0 {
		return d.PartTimeout
	}
	return 10 * time.Minute
}

// errPartTimeout is the cause of a part attempt that ran out of time.
var errPartTimeout = errors.New("part deadline passed")

// bufPool holds the copy buffers of part downloads.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 512<<10); return &b }}

// Download fetches files (entries of one manifest) from repo into staging,
// at most FileConcurrency files and PartConcurrency ranged GETs per file at
// once, and verifies each file's length and CRC32C. On the first failure it
// cancels every other request, waits until all have returned, removes every
// file it staged (verified or not), and returns the error, which names the
// file. Errors wrap ErrChecksum, ErrNotFound, ErrUnavailable,
// ErrAccessDenied or the context's error.
func (d *Downloader) Download(ctx context.Context, repo Repository, files []FileEntry, area *staging.Area) error {
	seen := make(map[string]bool, len(files))
	for _, f := range files {
		if seen[f.Name] {
			return fmt.Errorf("snapshot: download: file %s listed twice", f.Name)
		}
		seen[f.Name] = true
	}
	var mu sync.Mutex
	var created []string
	onCreate := func(name string) {
		mu.Lock()
		created = append(created, name)
		mu.Unlock()
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(d.fileConcurrency())
	for _, f := range files {
		g.Go(func() error { return d.downloadFile(gctx, repo, f, area, onCreate) })
	}
	err := g.Wait()
	if err == nil {
		return nil
	}
	var rmErrs []error
	for _, name := range created {
		if rerr := area.RemoveFile(name); rerr != nil {
			rmErrs = append(rmErrs, rerr)
		}
	}
	if len(rmErrs) > 0 {
		return fmt.Errorf("%w (and removing staged files failed: %w)", err, errors.Join(rmErrs...))
	}
	return err
}

// DownloadFile fetches one file into staging, as Download does; on failure
// the staged file is removed.
func (d *Downloader) DownloadFile(ctx context.Context, repo Repository, f FileEntry, area *staging.Area) error {
	return d.Download(ctx, repo, []FileEntry{f}, area)
}

func (d *Downloader) downloadFile(ctx context.Context, repo Repository, f FileEntry, area *staging.Area, onCreate func(string)) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("snapshot: download %s (blob %s): %w", f.Name, f.Blob, err)
		}
	}()
	if err := ValidateKey(f.Blob); err != nil {
		return err
	}
	if area.Verified(f.FileMeta) {
		return nil // staged and checked by an earlier attempt (or before a restart)
	}
	// The blob must exist with the manifest's length before anything is
	// staged.
	var info ObjectInfo
	err = retryCall(ctx, d.Retry, func(ctx context.Context) error {
		var err error
		info, err = repo.Stat(ctx, f.Blob)
		return err
	})
	if err != nil {
		return err
	}
	if info.Size != f.Length {
		return fmt.Errorf("%w: file %s: blob is %d bytes, manifest says %d", ErrChecksum, f.Name, info.Size, f.Length)
	}
	sf, err := area.CreateFile(f.FileMeta)
	if err != nil {
		return err
	}
	onCreate(f.Name)
	defer sf.Close()
	// Bytes a previous attempt left are not trusted.
	if err := sf.Truncate(0); err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(d.partConcurrency())
	ps := d.partSize()
	for off := int64(0); off < f.Length; off += ps {
		n := min(ps, f.Length-off)
		g.Go(func() error { return d.downloadPart(gctx, repo, f, sf, off, n) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := sf.Verify(); err != nil {
		return fmt.Errorf("%w: file %s: %w", ErrChecksum, f.Name, err)
	}
	sf.SyncBehind()
	d.files.Add(1)
	return nil
}

// downloadPart fetches [off, off+length) of f into sf, retrying transient
// errors from where the last attempt stopped.
func (d *Downloader) downloadPart(ctx context.Context, repo Repository, f FileEntry, sf *staging.File, off, length int64) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	l := loop(d.Retry)
	r := l.Start()
	pos, end := off, off+length
	for {
		before := pos
		err := d.fetch(ctx, repo, f, sf, &pos, end, *bp)
		if err == nil {
			return nil
		}
		if pos > before {
			r.Progress()
		}
		if err = l.Pause(ctx, r, err); err != nil {
			return fmt.Errorf("bytes %d-%d: %w", pos, end-1, err)
		}
		d.retries.Add(1)
	}
}

// fetch is one attempt: a ranged GET of [*pos, end), written as it comes;
// *pos advances with every chunk written.
func (d *Downloader) fetch(ctx context.Context, repo Repository, f FileEntry, sf *staging.File, pos *int64, end int64, buf []byte) (err error) {
	pctx, cancel := context.WithTimeoutCause(ctx, d.partTimeout(), errPartTimeout)
	defer cancel()
	defer func() {
		// Our own part deadline is a transient failure, not a cancel.
		if err != nil && ctx.Err() == nil && pctx.Err() != nil {
			err = unavailable("get", repo.String(), f.Blob, fmt.Errorf("%w (%v): %w", errPartTimeout, d.partTimeout(), err))
		}
	}()
	body, err := repo.GetRange(pctx, f.Blob, *pos, end-*pos)
	if err != nil {
		return err
	}
	defer body.Close()
	for *pos < end {
		k := int(min(int64(len(buf)), end-*pos))
		n, rerr := io.ReadFull(body, buf[:k])
		if n > 0 {
			if d.Throttle != nil {
				if terr := d.Throttle(pctx, n); terr != nil {
					return terr
				}
			}
			if _, werr := sf.WriteAt(buf[:n], *pos); werr != nil {
				return fmt.Errorf("snapshot: write staged %s: %w", f.Name, werr)
			}
			*pos += int64(n)
			d.bytes.Add(int64(n))
			if d.OnBytes != nil {
				d.OnBytes(f.Name, int64(n))
			}
		}
		if rerr != nil {
			if *pos >= end {
				return nil
			}
			if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
				return unavailable("get", repo.String(), f.Blob, fmt.Errorf("body ended at %d, %d expected: %w", *pos, end, io.ErrUnexpectedEOF))
			}
			return rerr
		}
	}
	return nil
}
