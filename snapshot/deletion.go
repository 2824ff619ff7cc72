package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/shardstore"
)

// Deleting blobs when other processes create snapshots, without locks.
//
// A repository is shared: the primary's recoverd creates snapshots, every
// node's cleanup sweeps unfinished uploads, an operator runs recoverctl
// snapshot gc or delete. An object store has no lock to take, so a blob is
// never deleted the moment it looks unreferenced (a Create in another
// process may be about to write a manifest naming it). Deletion has two
// phases, as Thanos' deletion marks:
//
//  1. Mark: a blob that no manifest references (every manifest read) gets
//     a deletion mark, <index>/<shard>/marks/<blob name>. Delete and GC
//     mark the blobs of the manifests they removed; RemoveUnfinished marks
//     unreferenced blobs older than the upload grace.
//  2. Collect, later: a blob whose mark is older than the deletion delay
//     (DeleteOptions.Delay, by the mark's modification time) is deleted,
//     then its mark, if no manifest references it. The marks are listed
//     before the manifests are read. A mark is never removed while its
//     blob exists, even when a manifest references the blob again.
//
// Create never reuses a marked blob, and checks every blob its manifest
// names (listing marks, then blobs) just before it writes the manifest
// and again after: a blob marked or gone by then is uploaded again under a
// new key (the commit is pinned) and the manifest rewritten. The check
// after the write is what makes the manifest safe for good: a blob
// present and unmarked then can only be collected through a mark written
// after the manifest, and collecting it reads the manifests after that
// mark, so it sees the manifest and keeps the blob. The check before the
// write, with the delay, keeps the manifest from naming a missing blob
// even for a moment: a mark that appears after that check is younger
// than the time the manifest write takes, far below the delay.
//
// Each blob is listed by Create before it trusts it: marks before blobs,
// and collection deletes the blob before its mark, so a blob seen present
// and unmarked was not being collected when it was seen.

// DefaultDeletionDelay is how long a blob stays marked for deletion before
// it is deleted. It must be far longer than a Create takes to write its
// manifest after checking its blobs (well under a second; bounded by the
// retry budget when the store is slow), and it lets a recovery that is
// downloading a snapshot deleted meanwhile finish.
const DefaultDeletionDelay = time.Hour

// DeleteOptions tune Delete, GC and RemoveUnfinished.
type DeleteOptions struct {
	// Delay is how long a blob stays marked before it is deleted
	// (default DefaultDeletionDelay). Every process deleting from a
	// repository should use the same.
	Delay time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (o DeleteOptions) withDefaults() DeleteOptions {
	if o.Delay <= 0 {
		o.Delay = DefaultDeletionDelay
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Why a blob was marked for deletion (Collected.Reason).
const (
	ReasonGC         = "gc"         // its snapshot was deleted by GC
	ReasonDelete     = "delete"     // its snapshot was deleted by Delete
	ReasonUnfinished = "unfinished" // an upload no manifest took, older than the grace
)

// MarkPrefix is "<index>/<shard>/marks/".
func MarkPrefix(id shardstore.ShardID) string { return ShardPrefix(id) + "marks/" }

// markKey is the deletion mark of a blob of shard id.
func markKey(id shardstore.ShardID, blob string) string {
	return MarkPrefix(id) + strings.TrimPrefix(blob, BlobPrefix(id))
}

// deletionMark is what a mark holds; its age is the object's modification
// time, the store's clock, as for the upload grace.
type deletionMark struct {
	Blob     string    `json:"blob"`
	Reason   string    `json:"reason"`
	MarkedAt time.Time `json:"marked_at"`
}

// Collected is a blob deleted because its deletion mark had passed the
// delay and no manifest referenced it.
type Collected struct {
	ObjectInfo
	Reason string // ReasonGC, ReasonDelete, ReasonUnfinished, or "" if the mark did not say
}

// unusable returns the blobs of files that are marked for deletion or gone:
// marks are listed before blobs (see the package comment).
func unusable(ctx context.Context, repo Repository, p retry.Options, id shardstore.ShardID, files []FileEntry) ([]int, error) {
	marks, err := listKeys(ctx, repo, p, MarkPrefix(id))
	if err != nil {
		return nil, err
	}
	blobs, err := listKeys(ctx, repo, p, BlobPrefix(id))
	if err != nil {
		return nil, err
	}
	var bad []int
	for i, f := range files {
		if marks[markKey(id, f.Blob)] || !blobs[f.Blob] {
			bad = append(bad, i)
		}
	}
	return bad, nil
}

// mark writes deletion marks for the blobs that have none and returns
// those it marked.
func mark(ctx context.Context, repo Repository, p retry.Options, id shardstore.ShardID, blobs []string, reason string, now time.Time) ([]string, error) {
	if len(blobs) == 0 {
		return nil, nil
	}
	marks, err := listKeys(ctx, repo, p, MarkPrefix(id))
	if err != nil {
		return nil, err
	}
	var n []string
	for _, b := range blobs {
		key := markKey(id, b)
		if marks[key] {
			continue
		}
		data, err := json.Marshal(deletionMark{Blob: b, Reason: reason, MarkedAt: now.UTC()})
		if err != nil {
			return n, err
		}
		if err := retryCall(ctx, p, func(ctx context.Context) error {
			return repo.Put(ctx, key, strings.NewReader(string(data)), int64(len(data)))
		}); err != nil {
			return n, fmt.Errorf("snapshot: mark %s for deletion: %w", b, err)
		}
		n = append(n, b)
	}
	return n, nil
}

// collect deletes the blobs of shard id whose marks are older than the
// delay and that no manifest references, each before its mark; a mark
// whose blob is gone is removed. If any manifest cannot be read nothing is
// deleted.
func collect(ctx context.Context, repo Repository, p retry.Options, id shardstore.ShardID, o DeleteOptions) ([]Collected, error) {
	marks, err := listKeys(ctx, repo, p, MarkPrefix(id)) // before the manifests
	if err != nil {
		return nil, err
	}
	if len(marks) == 0 {
		return nil, nil
	}
	entries, err := readAll(ctx, repo, p, id)
	if err != nil {
		return nil, err
	}
	referenced := map[string]bool{}
	for _, e := range entries {
		if e.Err != nil {
			return nil, fmt.Errorf("snapshot: nothing collected, a manifest cannot be read: %w", e.Err)
		}
		for _, f := range e.Manifest.Files {
			referenced[f.Blob] = true
		}
	}
	blobs, err := listKeys(ctx, repo, p, BlobPrefix(id))
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(marks))
	for k := range marks {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	now := o.Now()
	var out []Collected
	for _, k := range keys {
		blob := BlobPrefix(id) + strings.TrimPrefix(k, MarkPrefix(id))
		if !blobs[blob] {
			if err := retryCall(ctx, p, func(ctx context.Context) error { return repo.Delete(ctx, k) }); err != nil {
				return out, err
			}
			continue
		}
		if referenced[blob] {
			continue
		}
		var mi, bi ObjectInfo
		err := retryCall(ctx, p, func(ctx context.Context) error {
			var err error
			if mi, err = repo.Stat(ctx, k); err != nil {
				return err
			}
			bi, err = repo.Stat(ctx, blob)
			return err
		})
		if errors.Is(err, ErrNotFound) {
			continue // collected meanwhile by another process
		}
		if err != nil {
			return out, err
		}
		if now.Sub(mi.ModTime) < o.Delay {
			continue
		}
		reason := markReason(ctx, repo, k)
		if err := retryCall(ctx, p, func(ctx context.Context) error { return repo.Delete(ctx, blob) }); err != nil {
			return out, fmt.Errorf("snapshot: delete blob %s: %w", blob, err)
		}
		out = append(out, Collected{ObjectInfo: bi, Reason: reason})
		if err := retryCall(ctx, p, func(ctx context.Context) error { return repo.Delete(ctx, k) }); err != nil {
			return out, fmt.Errorf("snapshot: delete mark %s: %w", k, err)
		}
	}
	return out, nil
}

// markReason reads why a blob was marked; "" when the mark cannot be read.
func markReason(ctx context.Context, repo Repository, key string) string {
	body, err := repo.Get(ctx, key)
	if err != nil {
		return ""
	}
	defer body.Close()
	var m deletionMark
	if json.NewDecoder(io.LimitReader(body, 4096)).Decode(&m) != nil {
		return ""
	}
	return m.Reason
}

func freed(c []Collected) (n int64) {
	for _, b := range c {
		n += b.Size
	}
	return n
}
