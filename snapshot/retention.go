package snapshot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/recoverd/recoverd/shardstore"
)

// Deleting snapshots and sweeping unfinished uploads: the callers of the
// deletion protocol (deletion.go). Each removes manifests at once and
// marks the blobs nothing references any more; blobs marked longer ago
// than the deletion delay are deleted by whichever of them runs next.

// DeleteResult says what Delete did.
type DeleteResult struct {
	SnapshotID string
	// MarkedBlobs are the snapshot's blobs no other manifest references,
	// marked for deletion; DeletedBlobs and FreedBytes count the blobs
	// (of this or earlier deletions) whose marks had passed the delay.
	MarkedBlobs  int
	DeletedBlobs int
	FreedBytes   int64
	// KeptBlobs is set when the snapshot's blobs were left unmarked
	// because some manifest could not be decoded (so it is not known
	// which blobs are still referenced) or the deleted manifest itself
	// was corrupt; RemoveUnfinished marks them once every manifest reads.
	KeptBlobs string
}

// Delete removes one snapshot: its manifest first, then it marks for
// deletion its blobs that no other manifest references and deletes the
// blobs whose marks have passed the delay (see the package comment). When
// the repository cannot be read nothing is deleted. A corrupt manifest can
// be deleted; its blobs, and the blobs of any snapshot deleted while
// another manifest is corrupt, are kept.
func Delete(ctx context.Context, repo Repository, id shardstore.ShardID, snapshotID string, opts DeleteOptions) (*DeleteResult, error) {
	if err := ValidateSnapshotID(snapshotID); err != nil {
		return nil, err
	}
	o := opts.withDefaults()
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
	if err := retryCall(ctx, p, func(ctx context.Context) error { return repo.Delete(ctx, key) }); err != nil {
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
	marked, err := mark(ctx, repo, p, id, unreferenced([]*Manifest{target.Manifest}, referenced), ReasonDelete, o.Now())
	res.MarkedBlobs = len(marked)
	if err != nil {
		return res, fmt.Errorf("snapshot: delete %s of %s: manifest deleted, blobs marked in part: %w", snapshotID, id, err)
	}
	gone, err := collect(ctx, repo, p, id, o)
	res.DeletedBlobs, res.FreedBytes = len(gone), freed(gone)
	if err != nil {
		return res, fmt.Errorf("snapshot: delete %s of %s: manifest deleted, blobs marked, collected in part: %w", snapshotID, id, err)
	}
	return res, nil
}

// unreferenced lists the blobs of ms that referenced does not hold.
func unreferenced(ms []*Manifest, referenced map[string]bool) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range ms {
		for _, f := range m.Files {
			if !referenced[f.Blob] && !seen[f.Blob] {
				seen[f.Blob] = true
				out = append(out, f.Blob)
			}
		}
	}
	slices.Sort(out)
	return out
}

// GCResult says what GC did.
type GCResult struct {
	Kept    []string // snapshot ids kept, oldest first
	Deleted []string // snapshot ids deleted, oldest first
	// MarkedBlobs, DeletedBlobs and FreedBytes as in DeleteResult.
	MarkedBlobs  int
	DeletedBlobs int
	FreedBytes   int64
}

// GCPlan is what GC does to a shard's snapshots, both lists oldest first.
type GCPlan struct {
	Keep   []Entry // the newest keep snapshots
	Delete []Entry // the others
}

// PlanGC decides, without I/O, what GC does to a shard's snapshots as List
// returns them (oldest first): keep the newest keep, delete the others. It
// decides nothing when keep is negative or when any manifest cannot be
// read, and GC then deletes nothing. recoverctl's gc --dry-run prints it.
func PlanGC(entries []Entry, keep int) (GCPlan, error) {
	if err := checkKeep(keep); err != nil {
		return GCPlan{}, err
	}
	var bad []error
	for _, e := range entries {
		if e.Err != nil {
			bad = append(bad, e.Err)
		}
	}
	if len(bad) > 0 {
		return GCPlan{}, fmt.Errorf("%d manifest(s) cannot be read: %w", len(bad), errors.Join(bad...))
	}
	cut := max(len(entries)-keep, 0)
	return GCPlan{Keep: entries[cut:], Delete: entries[:cut]}, nil
}

func checkKeep(keep int) error {
	if keep < 0 {
		return fmt.Errorf("snapshot: gc: keep %d is negative", keep)
	}
	return nil
}

// GC keeps the newest keep snapshots of a shard and deletes the others
// (PlanGC): their manifests first, then it marks for deletion the blobs no
// kept manifest references and deletes the blobs whose marks have passed
// the delay. If any manifest cannot be read (unavailable or corrupt) GC
// stops whole and deletes nothing.
func GC(ctx context.Context, repo Repository, id shardstore.ShardID, keep int, opts DeleteOptions) (*GCResult, error) {
	if err := checkKeep(keep); err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	p := policyOf(repo)
	entries, err := readAll(ctx, repo, p, id)
	if err != nil {
		return nil, fmt.Errorf("snapshot: gc %s: nothing deleted: %w", id, err)
	}
	plan, err := PlanGC(entries, keep)
	if err != nil {
		return nil, fmt.Errorf("snapshot: gc %s: nothing deleted, %w", id, err)
	}
	res := &GCResult{}
	referenced := map[string]bool{}
	for _, e := range plan.Keep {
		res.Kept = append(res.Kept, e.ID)
		for _, f := range e.Manifest.Files {
			referenced[f.Blob] = true
		}
	}
	var gone []*Manifest
	for _, e := range plan.Delete {
		key := ManifestKey(id, e.ID)
		if err := retryCall(ctx, p, func(ctx context.Context) error { return repo.Delete(ctx, key) }); err != nil {
			return res, fmt.Errorf("snapshot: gc %s: delete manifest %s: %w", id, key, err)
		}
		res.Deleted = append(res.Deleted, e.ID)
		gone = append(gone, e.Manifest)
	}
	marked, err := mark(ctx, repo, p, id, unreferenced(gone, referenced), ReasonGC, o.Now())
	res.MarkedBlobs = len(marked)
	if err != nil {
		return res, fmt.Errorf("snapshot: gc %s: manifests deleted, blobs marked in part: %w", id, err)
	}
	collected, err := collect(ctx, repo, p, id, o)
	res.DeletedBlobs, res.FreedBytes = len(collected), freed(collected)
	if err != nil {
		return res, fmt.Errorf("snapshot: gc %s: manifests deleted, blobs marked, collected in part: %w", id, err)
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
		err := retryCall(ctx, p, func(ctx context.Context) error {
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

// SweepResult says what RemoveUnfinished did.
type SweepResult struct {
	// Marked are the unfinished uploads marked for deletion by this call.
	Marked []ObjectInfo
	// Deleted are the blobs deleted by this call: marked (by it or
	// earlier, for any reason) longer ago than the delay, and referenced
	// by no manifest.
	Deleted []Collected
}

// RemoveUnfinished marks for deletion what Unfinished lists (with
// opts.Now() as now), then deletes the blobs of the shard whose marks have
// passed the delay: an unfinished upload is deleted by a later call, once
// its mark is old enough and if no Create took it meanwhile.
func RemoveUnfinished(ctx context.Context, repo Repository, id shardstore.ShardID, grace time.Duration, opts DeleteOptions) (*SweepResult, error) {
	o := opts.withDefaults()
	now := o.Now()
	res := &SweepResult{}
	blobs, err := Unfinished(ctx, repo, id, grace, now)
	if err != nil {
		return res, err
	}
	p := policyOf(repo)
	keys := make([]string, len(blobs))
	for i, b := range blobs {
		keys[i] = b.Key
	}
	marked, err := mark(ctx, repo, p, id, keys, ReasonUnfinished, now)
	for _, b := range blobs {
		if slices.Contains(marked, b.Key) {
			res.Marked = append(res.Marked, b)
		}
	}
	if err != nil {
		return res, fmt.Errorf("snapshot: unfinished uploads of %s: %w", id, err)
	}
	res.Deleted, err = collect(ctx, repo, p, id, o)
	if err != nil {
		return res, fmt.Errorf("snapshot: unfinished uploads of %s: %w", id, err)
	}
	return res, nil
}
