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
	"sync/atomic"
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
// same (DESIGN.md section 3), then writes the manifest, last. On failure no
// manifest is written: the blobs uploaded so far are an unfinished upload
// that RemoveUnfinished deletes after its grace period.
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
	blobs, err := listKeys(ctx, repo, opts.Retry, BlobPrefix(id))
	if err != nil {
		return nil, fmt.Errorf("snapshot: create %s: %w", id, err)
	}
	var uploads, reused []FileEntry
	for _, f := range meta.Files {
		entry := FileEntry{FileMeta: f}
		for _, s := range stored[f.Name] {
			if s.FileMeta.SameAs(f) && blobs[s.Blob] {
				entry.Blob = s.Blob
				break
			}
		}
		if entry.Blob != "" {
			reused = append(reused, entry)
			res.ReusedFiles++
			res.ReusedBytes += f.Length
		} else {
			entry.Blob = BlobPrefix(id) + newBlobID(f.Name)
			uploads = append(uploads, entry)
		}
		m.Files = append(m.Files, entry)
	}

	// Data first.
	if err := uploadAll(ctx, repo, ref, uploads, opts); err != nil {
		return nil, fmt.Errorf("snapshot: create %s: %w", id, err)
	}
	for _, f := range uploads {
		res.UploadedFiles++
		res.UploadedBytes += f.Length
	}

	// Manifest last.
	m.EndTime = opts.Now().UTC()
	if m.EndTime.Before(start) {
		m.EndTime = start
	}
	data, err := EncodeManifest(m)
	if err != nil {
		return nil, fmt.Errorf("snapshot: create %s: %w", id, err)
	}
	key := ManifestKey(id, m.ID)
	if err := retry(ctx, opts.Retry, func(ctx context.Context) error {
		return repo.Put(ctx, key, strings.NewReader(string(data)), int64(len(data)))
	}); err != nil {
		return nil, fmt.Errorf("snapshot: create %s: write manifest %s: %w", id, key, err)
	}

	// A reused blob deleted meanwhile (a Delete or GC that ran against the
	// rules, concurrently) is uploaded again while the commit is pinned.
	if len(reused) > 0 {
		now, err := listKeys(ctx, repo, opts.Retry, BlobPrefix(id))
		if err != nil {
			return nil, fmt.Errorf("snapshot: create %s: check reused blobs: %w", id, err)
		}
		var missing []FileEntry
		for _, f := range reused {
			if !now[f.Blob] {
				missing = append(missing, f)
			}
		}
		if err := uploadAll(ctx, repo, ref, missing, opts); err != nil {
			return nil, fmt.Errorf("snapshot: create %s: re-upload reused blobs deleted during the snapshot: %w", id, err)
		}
	}
	return res, nil
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

// DeleteResult says what Delete did.
type DeleteResult struct {
	SnapshotID   string
	DeletedBlobs int
	FreedBytes   int64
	// KeptBlobs is set when the snapshot's blobs were left in place
	// because some manifest could not be decoded (so it is not known
	// which blobs are still referenced) or the deleted manifest itself
	// was corrupt; RemoveUnfinished deletes them once every manifest
	// reads.
	KeptBlobs string
}

// Delete removes one snapshot: its manifest first, then its blobs that no
// other manifest references. When the repository cannot be read nothing is
// deleted. A corrupt manifest can be deleted; its blobs, and the blobs of
// any snapshot deleted while another manifest is corrupt, are kept.
func Delete(ctx context.Context, repo Repository, id shardstore.ShardID, snapshotID string) (*DeleteResult, error) {
	if err := ValidateSnapshotID(snapshotID); err != nil {
		return nil, err
	}
	p := policyOf(repo)
	entries, err := readAll(ctx, repo, p, id)
	if err != nil {
		return nil, fmt.Errorf("snapshot: delete %s of %s: nothing deleted: %w", snapshotID, id, err)
	}
	var target *Entry
	referenced := map[string]bool{}
	var unreadable []string
	for i, e := range entries {
		if e.ID == snapshotID {
			target = &entries[i]
			continue
		}
		if e.Err != nil {
			unreadable = append(unreadable, e.ID)
			continue
		}
		for _, f := range e.Manifest.Files {
			referenced[f.Blob] = true
		}
	}
	if target == nil {
		return nil, fmt.Errorf("%w: snapshot %s of shard %s in %s", ErrNotFound, snapshotID, id, repo)
	}
	res := &DeleteResult{SnapshotID: snapshotID}
	key := ManifestKey(id, snapshotID)
	if err := retry(ctx, p, func(ctx context.Context) error { return repo.Delete(ctx, key) }); err != nil {
		return nil, fmt.Errorf("snapshot: delete manifest %s: %w", key, err)
	}
	switch {
	case target.Err != nil:
		res.KeptBlobs = "the deleted manifest was corrupt, so its blobs are unknown"
		return res, nil
	case len(unreadable) > 0:
		res.KeptBlobs = fmt.Sprintf("manifests %s cannot be read, so which blobs they reference is unknown", strings.Join(unreadable, ", "))
		return res, nil
	}
	n, freed, err := deleteBlobs(ctx, repo, p, []*Manifest{target.Manifest}, referenced)
	res.DeletedBlobs, res.FreedBytes = n, freed
	if err != nil {
		return res, fmt.Errorf("snapshot: delete %s of %s: manifest deleted, blobs in part: %w", snapshotID, id, err)
	}
	return res, nil
}

// deleteBlobs deletes the blobs of the given manifests that referenced
// does not hold.
func deleteBlobs(ctx context.Context, repo Repository, p RetryPolicy, ms []*Manifest, referenced map[string]bool) (int, int64, error) {
	seen := map[string]bool{}
	var n atomic.Int64
	var freed atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, m := range ms {
		for _, f := range m.Files {
			if referenced[f.Blob] || seen[f.Blob] {
				continue
			}
			seen[f.Blob] = true
			g.Go(func() error {
				if err := retry(gctx, p, func(ctx context.Context) error { return repo.Delete(ctx, f.Blob) }); err != nil {
					return err
				}
				n.Add(1)
				freed.Add(f.Length)
				return nil
			})
		}
	}
	err := g.Wait()
	return int(n.Load()), freed.Load(), err
}

// GCResult says what GC did.
type GCResult struct {
	Kept         []string // snapshot ids kept, oldest first
	Deleted      []string // snapshot ids deleted, oldest first
	DeletedBlobs int
	FreedBytes   int64
}

// GC keeps the newest keep snapshots of a shard and deletes the others:
// their manifests first, then the blobs no kept manifest references. If
// any manifest cannot be read (unavailable or corrupt) GC stops whole and
// deletes nothing.
func GC(ctx context.Context, repo Repository, id shardstore.ShardID, keep int) (*GCResult, error) {
	if keep < 0 {
		return nil, fmt.Errorf("snapshot: gc: keep %d is negative", keep)
	}
	p := policyOf(repo)
	entries, err := readAll(ctx, repo, p, id)
	if err != nil {
		return nil, fmt.Errorf("snapshot: gc %s: nothing deleted: %w", id, err)
	}
	var bad []error
	for _, e := range entries {
		if e.Err != nil {
			bad = append(bad, e.Err)
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("snapshot: gc %s: nothing deleted, %d manifest(s) cannot be read: %w", id, len(bad), errors.Join(bad...))
	}
	res := &GCResult{}
	cut := max(len(entries)-keep, 0)
	referenced := map[string]bool{}
	for _, e := range entries[cut:] {
		res.Kept = append(res.Kept, e.ID)
		for _, f := range e.Manifest.Files {
			referenced[f.Blob] = true
		}
	}
	var gone []*Manifest
	for _, e := range entries[:cut] {
		key := ManifestKey(id, e.ID)
		if err := retry(ctx, p, func(ctx context.Context) error { return repo.Delete(ctx, key) }); err != nil {
			return res, fmt.Errorf("snapshot: gc %s: delete manifest %s: %w", id, key, err)
		}
		res.Deleted = append(res.Deleted, e.ID)
		gone = append(gone, e.Manifest)
	}
	n, freed, err := deleteBlobs(ctx, repo, p, gone, referenced)
	res.DeletedBlobs, res.FreedBytes = n, freed
	if err != nil {
		return res, fmt.Errorf("snapshot: gc %s: manifests deleted, blobs in part: %w", id, err)
	}
	return res, nil
}

// Unfinished lists the blobs of a shard that no manifest references and
// that are older than grace: what an interrupted Create (or a Delete that
// had to keep blobs) left. A blob younger than grace may belong to an
// upload in progress. It fails, listing nothing, if any manifest cannot be
// read.
func Unfinished(ctx context.Context, repo Repository, id shardstore.ShardID, grace time.Duration, now time.Time) ([]ObjectInfo, error) {
	p := policyOf(repo)
	entries, err := readAll(ctx, repo, p, id)
	if err != nil {
		return nil, fmt.Errorf("snapshot: unfinished uploads of %s: %w", id, err)
	}
	referenced := map[string]bool{}
	for _, e := range entries {
		if e.Err != nil {
			return nil, fmt.Errorf("snapshot: unfinished uploads of %s: a manifest cannot be read: %w", id, e.Err)
		}
		for _, f := range e.Manifest.Files {
			referenced[f.Blob] = true
		}
	}
	blobs, err := listKeys(ctx, repo, p, BlobPrefix(id))
	if err != nil {
		return nil, fmt.Errorf("snapshot: unfinished uploads of %s: %w", id, err)
	}
	keys := make([]string, 0, len(blobs))
	for k := range blobs {
		if !referenced[k] {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var out []ObjectInfo
	for _, k := range keys {
		var info ObjectInfo
		err := retry(ctx, p, func(ctx context.Context) error {
			var err error
			info, err = repo.Stat(ctx, k)
			return err
		})
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("snapshot: unfinished uploads of %s: %w", id, err)
		}
		if now.Sub(info.ModTime) >= grace {
			out = append(out, info)
		}
	}
	return out, nil
}

// RemoveUnfinished deletes what Unfinished lists and returns it.
func RemoveUnfinished(ctx context.Context, repo Repository, id shardstore.ShardID, grace time.Duration, now time.Time) ([]ObjectInfo, error) {
	blobs, err := Unfinished(ctx, repo, id, grace, now)
	if err != nil {
		return nil, err
	}
	p := policyOf(repo)
	for i, b := range blobs {
		if err := retry(ctx, p, func(ctx context.Context) error { return repo.Delete(ctx, b.Key) }); err != nil {
			return blobs[:i], fmt.Errorf("snapshot: remove unfinished upload %s: %w", b.Key, err)
		}
	}
	return blobs, nil
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
		if len(parts) < 4 || (parts[2] != "blobs" && parts[2] != "snapshots") {
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
