package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/shardstore"
)

// listKeys lists keys under prefix as a set, with retries.
func listKeys(ctx context.Context, repo Repository, p retry.Options, prefix string) (map[string]bool, error) {
	var keys []string
	err := retryCall(ctx, p, func(ctx context.Context) error {
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
func listIDs(ctx context.Context, repo Repository, p retry.Options, id shardstore.ShardID) ([]string, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	var keys []string
	err := retryCall(ctx, p, func(ctx context.Context) error {
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
func readManifest(ctx context.Context, repo Repository, p retry.Options, id shardstore.ShardID, snapshotID string) (*Manifest, error) {
	key := ManifestKey(id, snapshotID)
	var data []byte
	err := retryCall(ctx, p, func(ctx context.Context) error {
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
func readAll(ctx context.Context, repo Repository, p retry.Options, id shardstore.ShardID) ([]Entry, error) {
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
	err := retryCall(ctx, policyOf(repo), func(ctx context.Context) error {
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
		if len(parts) < 4 || (parts[2] != "blobs" && parts[2] != "snapshots" && parts[2] != "marks" && parts[2] != "bad") {
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
