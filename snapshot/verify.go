package snapshot

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/shardstore"
)

// Verifying a repository (a scrub, like Elasticsearch's repository
// verification): every blob a live manifest references is read whole and
// checked against the manifest's length and CRC32C. What is found bad is
// marked (badblobs.go), so plans skip the snapshots that reference it and
// the next snapshot uploads the file again; a mark whose blob reads back
// whole, or that no snapshot references any more, is removed. Nothing is
// ever deleted but marks. A repository that cannot be read stops the
// verification with an ErrUnavailable error: unreadable is not corrupt,
// and nothing is marked for it.

// VerifyOptions tune Verify. The zero value verifies the whole repository,
// two blobs at a time, and updates the marks.
type VerifyOptions struct {
	// Shards to verify; empty means every shard in the repository.
	Shards []shardstore.ShardID
	// Concurrency is the number of blobs read at once (default 2).
	Concurrency int
	// Throttle, when set, is called with every chunk read before it is
	// checked (from several goroutines at once); it blocks to slow the
	// verification down, or fails to stop it.
	Throttle func(ctx context.Context, n int) error
	// ReadOnly reports without writing or removing any mark.
	ReadOnly bool
	// FoundBy names the verifier in the marks it writes (default
	// "snapshot verify").
	FoundBy string
	// OnBlob, when set, is called after each blob is checked, from the
	// calling goroutine.
	OnBlob func(BlobCheck)
	// Retry is the policy for transient errors (zero: the repository's).
	Retry retry.Options
	// Now is the clock of the marks; nil means time.Now.
	Now func() time.Time
}

// Status of a checked blob.
const (
	BlobOK      = "ok"
	BlobCorrupt = "corrupt" // BadChecksum: length or CRC32C differ from the manifest's
	BlobMissing = "missing" // BadMissing: not in the repository
)

// BlobRef is a file of a snapshot that references a blob.
type BlobRef struct {
	Snapshot string `json:"snapshot"`
	File     string `json:"file"`
}

// BlobCheck is what Verify found about one blob.
type BlobCheck struct {
	Shard  string    `json:"shard"`
	Blob   string    `json:"blob"`
	Length int64     `json:"length"`
	Refs   []BlobRef `json:"referenced_by"`
	Status string    `json:"status"`
	Detail string    `json:"detail,omitempty"`
	// Marked: this verification marked it bad (it was not marked before).
	Marked bool `json:"marked,omitempty"`
}

// ManifestProblem is a manifest that could not be decoded.
type ManifestProblem struct {
	Shard    string `json:"shard"`
	Snapshot string `json:"snapshot"`
	Detail   string `json:"detail"`
}

// ClearedMark is a bad-blob mark Verify removed, and why.
type ClearedMark struct {
	Shard  string `json:"shard"`
	Blob   string `json:"blob"`
	Reason string `json:"reason"`
}

// VerifyResult says what Verify checked and found.
type VerifyResult struct {
	Shards    int   `json:"shards"`
	Snapshots int   `json:"snapshots"`
	Blobs     int   `json:"blobs"` // distinct blobs checked
	Bytes     int64 `json:"bytes"` // bytes read
	// Corrupt and Missing are the bad blobs, by shard and key.
	Corrupt []BlobCheck `json:"corrupt"`
	Missing []BlobCheck `json:"missing"`
	// CorruptManifests could not be decoded: their blobs are unknown, and
	// the snapshots are unusable.
	CorruptManifests []ManifestProblem `json:"corrupt_manifests"`
	// Cleared are the marks removed: blobs that read back whole, or that
	// no snapshot references any more.
	Cleared []ClearedMark `json:"cleared_marks"`
}

// OK reports whether everything checked out.
func (r *VerifyResult) OK() bool {
	return len(r.Corrupt)+len(r.Missing)+len(r.CorruptManifests) == 0
}

// Verify reads every blob referenced by a readable manifest of the shards
// opts names (every shard when none) and checks its length and CRC32C, at
// most opts.Concurrency blobs at once, each read once however many
// snapshots reference it. Unless opts.ReadOnly, it marks the corrupt and
// missing blobs bad and removes the marks of blobs that check out or that
// no manifest references. It returns what it found so far with an error
// when the repository cannot be read (ErrUnavailable) or ctx ends.
func Verify(ctx context.Context, repo Repository, opts VerifyOptions) (*VerifyResult, error) {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 2
	}
	if opts.Retry == (retry.Options{}) {
		opts.Retry = policyOf(repo)
	}
	if opts.FoundBy == "" {
		opts.FoundBy = "snapshot verify"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	shards := opts.Shards
	if len(shards) == 0 {
		var err error
		if shards, err = Shards(ctx, repo); err != nil {
			return &VerifyResult{}, fmt.Errorf("snapshot: verify: %w", err)
		}
	}
	res := &VerifyResult{Corrupt: []BlobCheck{}, Missing: []BlobCheck{}, CorruptManifests: []ManifestProblem{}, Cleared: []ClearedMark{}}
	for _, id := range shards {
		if err := verifyShard(ctx, repo, id, opts, res); err != nil {
			return res, fmt.Errorf("snapshot: verify %s: %w", id, err)
		}
		res.Shards++
	}
	return res, nil
}

// verifyShard verifies one shard's blobs into res.
func verifyShard(ctx context.Context, repo Repository, id shardstore.ShardID, opts VerifyOptions, res *VerifyResult) error {
	p := opts.Retry
	entries, err := readAll(ctx, repo, p, id)
	if err != nil {
		return err
	}
	refs := map[string][]BlobRef{}
	metas := map[string][]shardstore.FileMeta{}
	for _, e := range entries {
		if e.Err != nil {
			res.CorruptManifests = append(res.CorruptManifests, ManifestProblem{Shard: id.String(), Snapshot: e.ID, Detail: e.Err.Error()})
			continue
		}
		res.Snapshots++
		for _, f := range e.Manifest.Files {
			refs[f.Blob] = append(refs[f.Blob], BlobRef{Snapshot: e.ID, File: f.Name})
			if !slices.Contains(metas[f.Blob], f.FileMeta) {
				metas[f.Blob] = append(metas[f.Blob], f.FileMeta)
			}
		}
	}
	bad, err := badBlobs(ctx, repo, p, id)
	if err != nil {
		return err
	}

	blobs := sortedKeys(boolSet(refs))
	checks := make([]BlobCheck, len(blobs))
	var bytes atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Concurrency)
	for i, blob := range blobs {
		g.Go(func() error {
			c := BlobCheck{Shard: id.String(), Blob: blob, Length: metas[blob][0].Length, Refs: refs[blob], Status: BlobOK}
			n, err := verifyBlob(gctx, repo, p, blob, metas[blob], opts.Throttle)
			bytes.Add(n)
			switch BadCause(err) {
			case BadChecksum:
				c.Status, c.Detail = BlobCorrupt, err.Error()
			case BadMissing:
				c.Status, c.Detail = BlobMissing, err.Error()
			case "":
				if err != nil {
					return fmt.Errorf("blob %s: %w", blob, err)
				}
			}
			checks[i] = c
			return nil
		})
	}
	err = g.Wait()
	res.Bytes += bytes.Load()
	if err != nil {
		return err
	}
	// A blob is missing also when its snapshot was deleted, and the blob
	// collected, since the manifests were read: only the snapshots still
	// listed count.
	if slices.ContainsFunc(checks, func(c BlobCheck) bool { return c.Status == BlobMissing }) {
		ids, err := listIDs(ctx, repo, p, id)
		if err != nil {
			return err
		}
		for i := range checks {
			if checks[i].Status == BlobMissing {
				checks[i].Refs = slices.DeleteFunc(checks[i].Refs, func(r BlobRef) bool { return !slices.Contains(ids, r.Snapshot) })
			}
		}
	}

	for _, c := range checks {
		if len(c.Refs) == 0 {
			continue // its snapshots are gone
		}
		res.Blobs++
		switch {
		case c.Status == BlobOK && bad[c.Blob] && !opts.ReadOnly:
			if err := ClearBad(ctx, repo, id, c.Blob); err != nil {
				return err
			}
			res.Cleared = append(res.Cleared, ClearedMark{Shard: id.String(), Blob: c.Blob, Reason: "it reads back whole"})
		case c.Status != BlobOK && !bad[c.Blob] && !opts.ReadOnly:
			cause := BadChecksum
			if c.Status == BlobMissing {
				cause = BadMissing
			}
			if err := MarkBad(ctx, repo, id, BadBlob{Blob: c.Blob, File: c.Refs[0].File, Snapshot: c.Refs[0].Snapshot,
				Cause: cause, Detail: c.Detail, FoundBy: opts.FoundBy, MarkedAt: opts.Now()}); err != nil {
				return err
			}
			c.Marked = true
		}
		switch c.Status {
		case BlobCorrupt:
			res.Corrupt = append(res.Corrupt, c)
		case BlobMissing:
			res.Missing = append(res.Missing, c)
		}
		if opts.OnBlob != nil {
			opts.OnBlob(c)
		}
	}
	// Marks of blobs no readable manifest references mark nothing any
	// more; while a manifest is corrupt, which blobs it references is
	// unknown, so they stay.
	if len(res.CorruptManifests) == 0 && !opts.ReadOnly {
		for _, blob := range sortedKeys(bad) {
			if _, ok := refs[blob]; ok {
				continue
			}
			if err := ClearBad(ctx, repo, id, blob); err != nil {
				return err
			}
			res.Cleared = append(res.Cleared, ClearedMark{Shard: id.String(), Blob: blob, Reason: "no snapshot references it"})
		}
	}
	return nil
}

// verifyBlob reads a blob whole and checks it against every manifest
// entry naming it (metas: they all agree, unless a manifest is wrong). It
// returns the bytes read; errors wrap ErrChecksum (length or CRC32C),
// ErrNotFound (missing) or the repository's error, after retries.
func verifyBlob(ctx context.Context, repo Repository, p retry.Options, blob string, metas []shardstore.FileMeta, throttle func(context.Context, int) error) (int64, error) {
	if len(metas) > 1 {
		return 0, fmt.Errorf("%w: snapshots disagree about its length or CRC32C (%d versions)", ErrChecksum, len(metas))
	}
	meta := metas[0]
	var total atomic.Int64
	err := retryCall(ctx, p, func(ctx context.Context) error {
		body, err := repo.Get(ctx, blob)
		if err != nil {
			return err
		}
		defer body.Close()
		var r io.Reader = newVerifyingReader(body, meta)
		r = &meteredReader{ctx: ctx, r: r, name: meta.Name, throttle: throttle, onBytes: func(_ string, n int64) { total.Add(n) }}
		if _, err := io.Copy(io.Discard, r); err != nil {
			return err
		}
		var one [1]byte
		if n, _ := io.ReadFull(body, one[:]); n > 0 {
			return fmt.Errorf("%w: file %s: the blob is longer than the manifest's %d bytes", ErrChecksum, meta.Name, meta.Length)
		}
		return nil
	})
	return total.Load(), err
}

// boolSet is the key set of a map.
func boolSet[V any](m map[string]V) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

// Summary is one line about a result, for logs and the CLI.
func (r *VerifyResult) Summary() string {
	var parts []string
	if n := len(r.Corrupt); n > 0 {
		parts = append(parts, fmt.Sprintf("%d corrupt", n))
	}
	if n := len(r.Missing); n > 0 {
		parts = append(parts, fmt.Sprintf("%d missing", n))
	}
	if n := len(r.CorruptManifests); n > 0 {
		parts = append(parts, fmt.Sprintf("%d corrupt manifest(s)", n))
	}
	state := "all good"
	if len(parts) > 0 {
		state = strings.Join(parts, ", ")
	}
	return fmt.Sprintf("%d shard(s), %d snapshot(s), %d blob(s): %s", r.Shards, r.Snapshots, r.Blobs, state)
}
