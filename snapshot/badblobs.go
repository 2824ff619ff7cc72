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

// Bad-blob marks: a blob found corrupt or missing is recorded in the
// repository, next to the shard's snapshots, so that every node sees it:
//
//	<index>/<shard>/bad/<blob name>     JSON: BadBlob
//
// A recovery that fails to download a file because of its blob (checksum
// mismatch, blob gone) writes one; Verify writes one for every blob it
// finds bad and removes the marks of blobs that read back whole. A mark is
// never a reason to delete anything: cleanup and GC do not read marks, and
// the blob stays where it is for an operator to inspect. What reads them:
//
//   - planning (recovery.SnapshotInput): a snapshot that references a
//     marked blob is not used until Verify clears the mark or a newer
//     snapshot, which does not reference the blob, replaces it;
//   - Create: a file whose blob is marked is uploaded again, under a new
//     key, instead of being reused; so the next snapshot replaces the bad
//     one.
//
// Each reads the marks through BadBlobs (one LIST), and the details of a
// mark, when it needs them for a message, through ReadBadBlob.

// Causes of a bad blob (BadBlob.Cause).
const (
	BadChecksum = "checksum" // the bytes do not have the manifest's length or CRC32C
	BadMissing  = "missing"  // the blob is not in the repository
)

// BadBlob is what a bad-blob mark records.
type BadBlob struct {
	Blob string `json:"blob"` // the blob's key
	// File and Snapshot name the file and the snapshot the blob was found
	// bad through (a blob may be referenced by several snapshots).
	File     string `json:"file"`
	Snapshot string `json:"snapshot,omitempty"`
	Cause    string `json:"cause"`  // BadChecksum or BadMissing
	Detail   string `json:"detail"` // the error, in words
	// FoundBy says who found it: "recovery <id> on node <node>",
	// "recoverctl snapshot verify".
	FoundBy  string    `json:"found_by"`
	MarkedAt time.Time `json:"marked_at"`
}

// String is one line for logs, reasons and reports.
func (b BadBlob) String() string {
	s := fmt.Sprintf("blob %s of file %s is marked bad (%s", b.Blob, b.File, b.Cause)
	if b.FoundBy != "" {
		s += ", found by " + b.FoundBy
	}
	if !b.MarkedAt.IsZero() {
		s += " at " + b.MarkedAt.UTC().Format(time.RFC3339)
	}
	return s + ")"
}

// BadCause says whether err, from a download or a verification of one
// blob, is the blob's own fault: BadChecksum, BadMissing, or "" (the
// repository failed, the context ended, the local disk failed: nothing is
// known about the blob).
func BadCause(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrChecksum):
		return BadChecksum
	case errors.Is(err, ErrNotFound) && !errors.Is(err, ErrUnavailable):
		return BadMissing
	}
	return ""
}

// BadPrefix is "<index>/<shard>/bad/".
func BadPrefix(id shardstore.ShardID) string { return ShardPrefix(id) + "bad/" }

// badKey is the bad-blob mark of a blob of shard id.
func badKey(id shardstore.ShardID, blob string) string {
	return BadPrefix(id) + strings.TrimPrefix(blob, BlobPrefix(id))
}

// checkBlobKey checks that blob is a blob key of shard id.
func checkBlobKey(id shardstore.ShardID, blob string) error {
	name, ok := strings.CutPrefix(blob, BlobPrefix(id))
	if !ok {
		return fmt.Errorf("snapshot: %q is not a blob of shard %s", blob, id)
	}
	return shardstore.ValidateName(name)
}

// BadSet is the set of a shard's blobs marked bad, by blob key.
type BadSet map[string]bool

// Files returns the entries of m whose blobs are in the set, in m's order.
func (s BadSet) Files(m *Manifest) []FileEntry {
	var out []FileEntry
	for _, f := range m.Files {
		if s[f.Blob] {
			out = append(out, f)
		}
	}
	return out
}

// BadBlobs lists the blobs of a shard marked bad: the one way planning,
// Create and Verify (and a snapshot policy) learn of them. An empty set
// means the repository answered and holds no mark; a repository that
// cannot be listed is an ErrUnavailable error, never an empty set.
func BadBlobs(ctx context.Context, repo Repository, id shardstore.ShardID) (BadSet, error) {
	return badBlobs(ctx, repo, policyOf(repo), id)
}

func badBlobs(ctx context.Context, repo Repository, p retry.Options, id shardstore.ShardID) (BadSet, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	keys, err := listKeys(ctx, repo, p, BadPrefix(id))
	if err != nil {
		return nil, fmt.Errorf("snapshot: list bad-blob marks of %s: %w", id, err)
	}
	set := BadSet{}
	for k := range keys {
		name := strings.TrimPrefix(k, BadPrefix(id))
		if strings.Contains(name, "/") || shardstore.ValidateName(name) != nil {
			continue
		}
		set[BlobPrefix(id)+name] = true
	}
	return set, nil
}

// maxBadBlobBytes bounds a mark read back.
const maxBadBlobBytes = 64 << 10

// ReadBadBlob reads the mark of one blob. A mark that does not decode
// still marks its blob: it is returned with what is known (the blob) and
// a Detail saying the mark is unreadable. Errors: ErrNotFound (no mark),
// ErrUnavailable.
func ReadBadBlob(ctx context.Context, repo Repository, id shardstore.ShardID, blob string) (BadBlob, error) {
	if err := checkBlobKey(id, blob); err != nil {
		return BadBlob{}, err
	}
	key := badKey(id, blob)
	var data []byte
	err := retryCall(ctx, policyOf(repo), func(ctx context.Context) error {
		body, err := repo.Get(ctx, key)
		if err != nil {
			return err
		}
		defer body.Close()
		data, err = io.ReadAll(io.LimitReader(body, maxBadBlobBytes))
		return err
	})
	if err != nil {
		return BadBlob{}, fmt.Errorf("snapshot: read bad-blob mark %s: %w", key, err)
	}
	var b BadBlob
	if json.Unmarshal(data, &b) != nil || b.Blob != blob {
		return BadBlob{Blob: blob, Cause: "unknown", Detail: "the mark " + key + " cannot be decoded"}, nil
	}
	return b, nil
}

// MarkBad records b (b.Blob a blob key of shard id) in the repository,
// durably (a Put is durable once it returns), replacing an older mark of
// the same blob. MarkedAt is set to now when zero.
func MarkBad(ctx context.Context, repo Repository, id shardstore.ShardID, b BadBlob) error {
	if err := checkBlobKey(id, b.Blob); err != nil {
		return err
	}
	if b.MarkedAt.IsZero() {
		b.MarkedAt = time.Now()
	}
	b.MarkedAt = b.MarkedAt.UTC()
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return fmt.Errorf("snapshot: encode bad-blob mark: %w", err)
	}
	key := badKey(id, b.Blob)
	if err := retryCall(ctx, policyOf(repo), func(ctx context.Context) error {
		return repo.Put(ctx, key, strings.NewReader(string(data)), int64(len(data)))
	}); err != nil {
		return fmt.Errorf("snapshot: mark blob %s bad: %w", b.Blob, err)
	}
	return nil
}

// ClearBad removes the mark of a blob (none is not an error). The blob
// itself is not touched.
func ClearBad(ctx context.Context, repo Repository, id shardstore.ShardID, blob string) error {
	if err := checkBlobKey(id, blob); err != nil {
		return err
	}
	key := badKey(id, blob)
	if err := retryCall(ctx, policyOf(repo), func(ctx context.Context) error { return repo.Delete(ctx, key) }); err != nil {
		return fmt.Errorf("snapshot: clear bad-blob mark %s: %w", key, err)
	}
	return nil
}

// sortedKeys returns a set's keys in order.
func sortedKeys(s map[string]bool) []string {
	out := make([]string, 0, len(s))
	for k := range s {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
