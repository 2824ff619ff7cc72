package snapshot

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/internal/retry"
)

// CreateOptions tune Create. The zero value is usable.
type CreateOptions struct {
	// Concurrency is the number of blobs uploaded at once (default 4).
	Concurrency int
	// Retry is the policy for transient errors (zero: the repository's,
	// see S3Options.Retry, else retry.Repository).
	Retry retry.Options
	// Throttle, when set, is called with every chunk of bytes read for
	// upload, before it is sent; it blocks to slow the upload down or
	// fails to stop it.
	Throttle func(ctx context.Context, n int) error
	// OnBytes, when set, is called with the bytes of each file as they are
	// read for upload (a retried upload counts again).
	OnBytes func(file string, n int64)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// CreateResult says what Create did.
type CreateResult struct {
	Manifest      *Manifest
	UploadedFiles int
	UploadedBytes int64
	ReusedFiles   int
	ReusedBytes   int64
	// SkippedManifests counts manifests of the shard that could not be
	// decoded; their blobs were not considered for reuse.
	SkippedManifests int
	// ReplacedBad names the files uploaded again, under new keys, because
	// the blob they would have reused is marked bad (badblobs.go).
	ReplacedBad []string
}

// Create snapshots the source's current commit into repo. It pins the
// commit (so a flush or merge during the upload cannot delete its files),
// uploads the files no readable manifest of the shard already stores the
// same (DESIGN.md section 3) in a blob not marked for deletion nor marked
// bad (a file whose blob is marked bad gets a fresh full copy), then
// writes the manifest, last. Just before and after writing it, it checks
// that every blob it names is there and unmarked, and uploads again under
// new keys the files of those another process marked or removed meanwhile
// (deletion.go). On failure before the manifest no manifest is written:
// the blobs uploaded so far are an unfinished upload that RemoveUnfinished
// marks after its grace period and deletes after the deletion delay.
func Create(ctx context.Context, repo Repository, src Source, opts CreateOptions) (*CreateResult, error) {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.Retry == (retry.Options{}) {
		opts.Retry = policyOf(repo)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	id := src.ID()
	if err := id.Validate(); err != nil {
		return nil, err
	}
	ref, err := src.Pin(ctx, engine.PinOptions{})
	if err != nil {
		return nil, fmt.Errorf("snapshot: pin the commit of %s: %w", id, err)
	}
	// The pin is released whatever ctx says: a cancelled snapshot must
	// not keep the commit's files.
	defer ref.Release(context.WithoutCancel(ctx))
	meta := ref.Metadata()
	start := opts.Now().UTC()
	m := &Manifest{
		Version: ManifestVersion, ID: NewSnapshotID(start), Shard: id, StartTime: start,
		Generation: meta.Generation, Commit: meta.Commit,
	}

	// What the repository already holds.
	manifests, err := readAll(ctx, repo, opts.Retry, id)
	if err != nil {
		return nil, fmt.Errorf("snapshot: create %s: %w", id, err)
	}
	res := &CreateResult{Manifest: m}
	stored := map[string][]FileEntry{}
	for _, e := range manifests {
		if e.Err != nil {
			res.SkippedManifests++
			continue
		}
		for _, f := range e.Manifest.Files {
			stored[f.Name] = append(stored[f.Name], f)
		}
	}
	// Marks before blobs (deletion.go): a blob marked for deletion is not
	// reused.
	marks, err := listKeys(ctx, repo, opts.Retry, MarkPrefix(id))
	if err != nil {
		return nil, fmt.Errorf("snapshot: create %s: %w", id, err)
	}
	blobs, err := listKeys(ctx, repo, opts.Retry, BlobPrefix(id))
	if err != nil {
		return nil, fmt.Errorf("snapshot: create %s: %w", id, err)
	}
	// A blob found corrupt or missing is not reused either: the file is
	// uploaded again, so this snapshot replaces the one with the bad blob.
	bad, err := badBlobs(ctx, repo, opts.Retry, id)
	if err != nil {
		return nil, fmt.Errorf("snapshot: create %s: %w", id, err)
	}
	var uploads []FileEntry
	uploaded := make([]bool, len(meta.Files)) // by index in m.Files
	for i, f := range meta.Files {
		entry := FileEntry{FileMeta: f}
		replaced := false
		for _, s := range stored[f.Name] {
			if !s.FileMeta.SameAs(f) || !blobs[s.Blob] || marks[markKey(id, s.Blob)] {
				continue
			}
			if bad[s.Blob] {
				replaced = true
				continue
			}
			entry.Blob = s.Blob
			break
		}
		if entry.Blob == "" {
			entry.Blob = BlobPrefix(id) + newBlobID(f.Name)
			uploads = append(uploads, entry)
			uploaded[i] = true
			if replaced {
				res.ReplacedBad = append(res.ReplacedBad, f.Name)
			}
		}
		m.Files = append(m.Files, entry)
	}

	// Data first.
	if err := uploadAll(ctx, repo, ref, uploads, opts); err != nil {
		return nil, fmt.Errorf("snapshot: create %s: %w", id, err)
	}
	// Every blob the manifest names must still be there and unmarked just
	// before the manifest is written, and again after (deletion.go):
	// another process may have swept an upload older than its grace, or
	// deleted a snapshot whose blobs this one reuses. Such files are
	// uploaded again, under new keys, while the commit is pinned.
	if err := settle(ctx, repo, ref, m, uploaded, opts, nil); err != nil {
		return nil, fmt.Errorf("snapshot: create %s: %w", id, err)
	}
	m.EndTime = opts.Now().UTC()
	if m.EndTime.Before(start) {
		m.EndTime = start
	}
	write := func(ctx context.Context) error { return writeManifest(ctx, repo, opts.Retry, m) }
	if err := write(ctx); err != nil {
		return nil, fmt.Errorf("snapshot: create %s: %w", id, err)
	}
	if err := settle(ctx, repo, ref, m, uploaded, opts, write); err != nil {
		return nil, fmt.Errorf("snapshot: create %s: manifest written, but %w", id, err)
	}
	for i, f := range m.Files {
		if uploaded[i] {
			res.UploadedFiles++
			res.UploadedBytes += f.Length
		} else {
			res.ReusedFiles++
			res.ReusedBytes += f.Length
		}
	}
	return res, nil
}

// settleTries bounds how often Create uploads again files whose blobs
// another process marked or removed meanwhile.
const settleTries = 3

// settle checks that every blob m names exists and is not marked for
// deletion; the files of those that fail are uploaded again under new
// keys (uploaded records it) and, once a manifest was written (rewrite is
// set), the manifest is written again, until all pass.
func settle(ctx context.Context, repo Repository, ref engine.Pin, m *Manifest, uploaded []bool, opts CreateOptions, rewrite func(context.Context) error) error {
	for try := 0; ; try++ {
		bad, err := unusable(ctx, repo, opts.Retry, m.Shard, m.Files)
		if err != nil {
			return fmt.Errorf("check its blobs: %w", err)
		}
		if len(bad) == 0 {
			return nil
		}
		if try == settleTries {
			return fmt.Errorf("%w: %d of its blobs were marked for deletion or removed by another process %d times in a row (is a cleanup's --upload-grace shorter than this snapshot's uploads?)",
				ErrConcurrentDeletion, len(bad), try)
		}
		again := make([]FileEntry, len(bad))
		for j, i := range bad {
			m.Files[i].Blob = BlobPrefix(m.Shard) + newBlobID(m.Files[i].Name)
			uploaded[i] = true
			again[j] = m.Files[i]
		}
		if err := uploadAll(ctx, repo, ref, again, opts); err != nil {
			return fmt.Errorf("upload again the files whose blobs were marked for deletion or removed meanwhile: %w", err)
		}
		if rewrite != nil {
			if err := rewrite(ctx); err != nil {
				return err
			}
		}
	}
}

// writeManifest encodes m and writes it, last.
func writeManifest(ctx context.Context, repo Repository, p retry.Options, m *Manifest) error {
	data, err := EncodeManifest(m)
	if err != nil {
		return err
	}
	key := ManifestKey(m.Shard, m.ID)
	if err := retryCall(ctx, p, func(ctx context.Context) error {
		return repo.Put(ctx, key, strings.NewReader(string(data)), int64(len(data)))
	}); err != nil {
		return fmt.Errorf("write manifest %s: %w", key, err)
	}
	return nil
}
