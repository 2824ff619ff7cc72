package snapshot

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/recoverd/recoverd/shardstore"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// policyOf returns the retry policy for calls on repo: the one it carries
// (S3Options.Retry) or DefaultRetry.
func policyOf(repo Repository) RetryPolicy {
	if p, ok := repo.(interface{ RetryPolicy() RetryPolicy }); ok {
		return p.RetryPolicy().withDefaults()
	}
	return DefaultRetry
}

// Source is what Create snapshots: a shard that can pin its current commit
// (*shardstore.Shard is one).
type Source interface {
	ID() shardstore.ShardID
	AcquireCommit() (*shardstore.CommitRef, error)
}

// CreateOptions tune Create. The zero value is usable.
type CreateOptions struct {
	// Concurrency is the number of blobs uploaded at once (default 4).
	Concurrency int
	// Retry is the policy for transient errors (zero: the repository's,
	// see S3Options.Retry, else DefaultRetry).
	Retry RetryPolicy
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
}

// Create snapshots the source's current commit into repo. It pins the
// commit (so a flush or merge during the upload cannot delete its files),
// uploads the files no readable manifest of the shard already stores the
// same (DESIGN.md section 3) in a blob not marked for deletion, then
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
	if opts.Retry == (RetryPolicy{}) {
		opts.Retry = policyOf(repo)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	id := src.ID()
	if err := id.Validate(); err != nil {
		return nil, err
	}
	ref, err := src.AcquireCommit()
	if err != nil {
		return nil, fmt.Errorf("snapshot: pin the commit of %s: %w", id, err)
	}
	defer ref.Release()
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
	var uploads []FileEntry
	uploaded := make([]bool, len(meta.Files)) // by index in m.Files
	for i, f := range meta.Files {
		entry := FileEntry{FileMeta: f}
		for _, s := range stored[f.Name] {
			if s.FileMeta.SameAs(f) && blobs[s.Blob] && !marks[markKey(id, s.Blob)] {
				entry.Blob = s.Blob
				break
			}
		}
		if entry.Blob == "" {
			entry.Blob = BlobPrefix(id) + newBlobID(f.Name)
			uploads = append(uploads, entry)
			uploaded[i] = true
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
func settle(ctx context.Context, repo Repository, ref *shardstore.CommitRef, m *Manifest, uploaded []bool, opts CreateOptions, rewrite func(context.Context) error) error {
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
func writeManifest(ctx context.Context, repo Repository, p RetryPolicy, m *Manifest) error {
	data, err := EncodeManifest(m)
	if err != nil {
		return err
	}
	key := ManifestKey(m.Shard, m.ID)
	if err := retry(ctx, p, func(ctx context.Context) error {
		return repo.Put(ctx, key, strings.NewReader(string(data)), int64(len(data)))
	}); err != nil {
		return fmt.Errorf("write manifest %s: %w", key, err)
	}
	return nil
}

// uploadAll uploads files of the pinned commit to their blob keys.
func uploadAll(ctx context.Context, repo Repository, ref *shardstore.CommitRef, files []FileEntry, opts CreateOptions) error {
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

func upload(ctx context.Context, repo Repository, ref *shardstore.CommitRef, f FileEntry, opts CreateOptions) error {
	file, _, err := ref.Open(f.Name)
	if err != nil {
		return err
	}
	defer file.Close()
	return retry(ctx, opts.Retry, func(ctx context.Context) error {
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

// listKeys lists keys under prefix as a set, with retries.
func listKeys(ctx context.Context, repo Repository, p RetryPolicy, prefix string) (map[string]bool, error) {
	var keys []string
	err := retry(ctx, p, func(ctx context.Context) error {
		var err error
		keys, err = repo.List(ctx, prefix)
		return err
	})
	if err != nil {
		return nil, err
	}
	set := make(map[string]bool, len(keys))
	for _, k := range keys {
		set[k] = true
	}
	return set, nil
}

// listIDs lists the snapshot ids of a shard, oldest first. Keys under
// snapshots/ that are not manifest keys are ignored.
func listIDs(ctx context.Context, repo Repository, p RetryPolicy, id shardstore.ShardID) ([]string, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	var keys []string
	err := retry(ctx, p, func(ctx context.Context) error {
		var err error
		keys, err = repo.List(ctx, ManifestPrefix(id))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot: list snapshots of %s: %w", id, err)
	}
	var ids []string
	for _, k := range keys {
		if sid, ok := snapshotIDFromKey(id, k); ok {
			ids = append(ids, sid)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// readManifest reads and decodes one manifest, with retries for transient
// errors. Errors: ErrNotFound, ErrUnavailable, ErrCorruptManifest.
func readManifest(ctx context.Context, repo Repository, p RetryPolicy, id shardstore.ShardID, snapshotID string) (*Manifest, error) {
	key := ManifestKey(id, snapshotID)
	var data []byte
	err := retry(ctx, p, func(ctx context.Context) error {
		body, err := repo.Get(ctx, key)
		if err != nil {
			return err
		}
		defer body.Close()
		data, err = io.ReadAll(io.LimitReader(body, MaxManifestBytes+1))
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: snapshot %s of shard %s (%s)", ErrNotFound, snapshotID, id, err)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot: read manifest %s: %w", key, err)
	}
	m, err := DecodeManifest(data)
	if err != nil {
		return nil, fmt.Errorf("manifest %s in %s: %w", key, repo, err)
	}
	if m.ID != snapshotID || m.Shard != id {
		return nil, fmt.Errorf("manifest %s in %s: %w: it describes snapshot %s of shard %s", key, repo, ErrCorruptManifest, m.ID, m.Shard)
	}
	return m, nil
}

// Entry is one snapshot in a listing: its manifest, or why it could not be
// read (an ErrCorruptManifest error).
type Entry struct {
	ID       string
	Manifest *Manifest
	Err      error
}

// readAll reads every manifest of a shard, oldest first. A repository that
// cannot be listed or read fails the call; a corrupt manifest is an Entry
// with Err set; a manifest deleted between listing and reading is left out.
func readAll(ctx context.Context, repo Repository, p RetryPolicy, id shardstore.ShardID) ([]Entry, error) {
	ids, err := listIDs(ctx, repo, p, id)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(ids))
	for _, sid := range ids {
		m, err := readManifest(ctx, repo, p, id, sid)
		switch {
		case err == nil:
			out = append(out, Entry{ID: sid, Manifest: m})
		case errors.Is(err, ErrCorruptManifest):
			out = append(out, Entry{ID: sid, Err: err})
		case errors.Is(err, ErrNotFound):
			// deleted since the listing
		default:
			return nil, err
		}
	}
	return out, nil
}

// List returns the snapshots of a shard, oldest first. An empty list means
// the repository answered and holds none; a repository that cannot be read
// is an error (ErrUnavailable), never an empty list. A corrupt manifest is
// listed with its error.
func List(ctx context.Context, repo Repository, id shardstore.ShardID) ([]Entry, error) {
	return readAll(ctx, repo, policyOf(repo), id)
}

// Latest returns the newest readable snapshot of a shard: the greatest id,
// i.e. the latest start time (the most recent commit, even when an older
// snapshot finished later). Corrupt newer manifests are passed over.
// Errors: ErrNotFound when the shard has no snapshot, ErrCorruptManifest
// when it has some but none decodes, ErrUnavailable when the repository
// cannot be read.
func Latest(ctx context.Context, repo Repository, id shardstore.ShardID) (*Manifest, error) {
	p := policyOf(repo)
	ids, err := listIDs(ctx, repo, p, id)
	if err != nil {
		return nil, err
	}
	var corrupt []error
	for _, sid := range slices.Backward(ids) {
		m, err := readManifest(ctx, repo, p, id, sid)
		switch {
		case err == nil:
			return m, nil
		case errors.Is(err, ErrCorruptManifest):
			corrupt = append(corrupt, err)
		case errors.Is(err, ErrNotFound):
		default:
			return nil, err
		}
	}
	if len(corrupt) > 0 {
		return nil, fmt.Errorf("snapshot: no readable snapshot of %s in %s: %w", id, repo, errors.Join(corrupt...))
	}
	return nil, fmt.Errorf("%w: no snapshot of shard %s in %s", ErrNotFound, id, repo)
}

// Read returns one snapshot's manifest. Errors: ErrNotFound,
// ErrCorruptManifest, ErrUnavailable.
func Read(ctx context.Context, repo Repository, id shardstore.ShardID, snapshotID string) (*Manifest, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	if err := ValidateSnapshotID(snapshotID); err != nil {
		return nil, err
	}
	return readManifest(ctx, repo, policyOf(repo), id, snapshotID)
}

// Shards lists the shards that have objects in the repository.
func Shards(ctx context.Context, repo Repository) ([]shardstore.ShardID, error) {
	var keys []string
	err := retry(ctx, policyOf(repo), func(ctx context.Context) error {
		var err error
		keys, err = repo.List(ctx, "")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot: list shards: %w", err)
	}
	seen := map[shardstore.ShardID]bool{}
	var out []shardstore.ShardID
	for _, k := range keys {
		parts := strings.SplitN(k, "/", 4)
		if len(parts) < 4 || (parts[2] != "blobs" && parts[2] != "snapshots" && parts[2] != "marks") {
			continue
		}
		n, err := strconv.Atoi(parts[1])
		id := shardstore.ShardID{Index: parts[0], Shard: n}
		if err != nil || strconv.Itoa(n) != parts[1] || id.Validate() != nil || seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, id)
	}
	slices.SortFunc(out, func(a, b shardstore.ShardID) int {
		if c := strings.Compare(a.Index, b.Index); c != 0 {
			return c
		}
		return a.Shard - b.Shard
	})
	return out, nil
}
