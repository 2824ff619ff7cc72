package snapshot

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

// ManifestVersion is the manifest format this build writes and the newest
// it reads.
const ManifestVersion = 1

// MaxManifestBytes bounds a manifest read from a repository.
const MaxManifestBytes = 64 << 20

// Manifest describes one shard snapshot: the commit's user data and, per
// file, its metadata and the blob holding its bytes.
type Manifest struct {
	Version    int                `json:"manifest_version"`
	ID         string             `json:"snapshot_id"`
	Shard      shardstore.ShardID `json:"shard"`
	StartTime  time.Time          `json:"start_time"`
	EndTime    time.Time          `json:"end_time"`
	Generation uint64             `json:"generation"` // of the snapshotted commit
	// Commit is the snapshotted commit's user data: history UUID, max
	// seqno, local and global checkpoints, min retained seqno, primary
	// term, writer version and format version.
	Commit shardstore.CommitData `json:"commit"`
	Files  []FileEntry           `json:"files"` // sorted by name
}

// FileEntry is one file of a snapshot: its metadata (name, length, CRC32C,
// writer UUID) and the key of its blob.
type FileEntry struct {
	shardstore.FileMeta
	Blob string `json:"blob"`
}

// TotalBytes is the sum of the file lengths.
func (m *Manifest) TotalBytes() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Length
	}
	return n
}

// FileMetas returns the files' metadata (the file set a recovery publishes).
func (m *Manifest) FileMetas() []shardstore.FileMeta {
	out := make([]shardstore.FileMeta, len(m.Files))
	for i, f := range m.Files {
		out[i] = f.FileMeta
	}
	return out
}

// Lookup finds a file by name.
func (m *Manifest) Lookup(name string) (FileEntry, bool) {
	i, ok := slices.BinarySearchFunc(m.Files, name, func(f FileEntry, n string) int { return strings.Compare(f.Name, n) })
	if !ok {
		return FileEntry{}, false
	}
	return m.Files[i], true
}

// Select returns the entries of the named files, in the order given; a
// name the manifest does not hold is an ErrNotFound error.
func (m *Manifest) Select(names ...string) ([]FileEntry, error) {
	out := make([]FileEntry, 0, len(names))
	for _, n := range names {
		f, ok := m.Lookup(n)
		if !ok {
			return nil, fmt.Errorf("%w: file %s is not in snapshot %s", ErrNotFound, n, m.ID)
		}
		out = append(out, f)
	}
	return out, nil
}

// Metadata returns the snapshot as a shardstore.Metadata (what a planner
// compares with source and target commits).
func (m *Manifest) Metadata() shardstore.Metadata {
	return shardstore.Metadata{Generation: m.Generation, Files: m.FileMetas(), Commit: m.Commit}
}

// Layout of a shard's objects in a repository.

// ShardPrefix is "<index>/<shard>/".
func ShardPrefix(id shardstore.ShardID) string { return id.Index + "/" + strconv.Itoa(id.Shard) + "/" }

// BlobPrefix is "<index>/<shard>/blobs/".
func BlobPrefix(id shardstore.ShardID) string { return ShardPrefix(id) + "blobs/" }

// ManifestPrefix is "<index>/<shard>/snapshots/".
func ManifestPrefix(id shardstore.ShardID) string { return ShardPrefix(id) + "snapshots/" }

const manifestSuffix = ".json"

// ManifestKey is "<index>/<shard>/snapshots/<snapshot-id>.json".
func ManifestKey(id shardstore.ShardID, snapshotID string) string {
	return ManifestPrefix(id) + snapshotID + manifestSuffix
}

// snapshotIDFromKey returns the id of a manifest key, or false when key is
// not a manifest key of the shard.
func snapshotIDFromKey(id shardstore.ShardID, key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, ManifestPrefix(id))
	if !ok || strings.Contains(rest, "/") {
		return "", false
	}
	sid, ok := strings.CutSuffix(rest, manifestSuffix)
	if !ok || ValidateSnapshotID(sid) != nil {
		return "", false
	}
	return sid, true
}

// Snapshot ids: "s-" + UTC time to the millisecond + "-" + 6 random hex
// digits. Fixed width, so sorting ids sorts by start time.
const snapshotIDTime = "20060102T150405.000Z"

// NewSnapshotID returns a new id for a snapshot started at t.
func NewSnapshotID(t time.Time) string {
	var b [3]byte
	rand.Read(b[:])
	return "s-" + t.UTC().Format(snapshotIDTime) + "-" + hex.EncodeToString(b[:])
}

// ValidateSnapshotID checks an id's form: "s-", a canonical UTC time to
// the millisecond, "-", six lowercase hex digits.
func ValidateSnapshotID(id string) error {
	n := len(snapshotIDTime)
	rest, ok := strings.CutPrefix(id, "s-")
	if !ok || len(rest) != n+7 || rest[n] != '-' {
		return fmt.Errorf("snapshot: invalid snapshot id %q", id)
	}
	ts, rnd := rest[:n], rest[n+1:]
	if t, err := time.Parse(snapshotIDTime, ts); err != nil || t.Format(snapshotIDTime) != ts {
		return fmt.Errorf("snapshot: invalid snapshot id %q: bad time", id)
	}
	for i := 0; i < len(rnd); i++ {
		if c := rnd[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("snapshot: invalid snapshot id %q", id)
		}
	}
	return nil
}

// newBlobID names the blob of one uploaded file: the file name and a random
// suffix, so every upload has its own key and never overwrites a blob a
// manifest references.
func newBlobID(name string) string {
	var b [6]byte
	rand.Read(b[:])
	suffix := hex.EncodeToString(b[:])
	if len(name)+1+len(suffix) > shardstore.MaxNameLen {
		name = name[:shardstore.MaxNameLen-1-len(suffix)]
	}
	return name + "-" + suffix
}

// EncodeManifest validates m and encodes it as indented JSON.
func EncodeManifest(m *Manifest) ([]byte, error) {
	c := *m
	c.Files = slices.Clone(m.Files)
	slices.SortFunc(c.Files, func(a, b FileEntry) int { return strings.Compare(a.Name, b.Name) })
	if err := c.Validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("snapshot: encode manifest: %w", err)
	}
	return append(b, '\n'), nil
}

// DecodeManifest parses and strictly validates a manifest: unknown fields,
// trailing data, a newer version, invalid names or blob keys outside the
// shard's blobs/ prefix are ErrCorruptManifest errors.
func DecodeManifest(data []byte) (*Manifest, error) {
	if len(data) > MaxManifestBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d allowed", ErrCorruptManifest, len(data), MaxManifestBytes)
	}
	// Peek at the version first, so a newer manifest says so instead of
	// failing on a field this build does not know.
	var v struct {
		Version *int `json:"manifest_version"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptManifest, err)
	}
	if v.Version == nil {
		return nil, fmt.Errorf("%w: no manifest_version", ErrCorruptManifest)
	}
	if *v.Version < 1 || *v.Version > ManifestVersion {
		return nil, fmt.Errorf("%w: manifest_version %d, this build reads 1 to %d", ErrCorruptManifest, *v.Version, ManifestVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptManifest, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the manifest", ErrCorruptManifest)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// maxWriterUUIDLen bounds a writer UUID.
const maxWriterUUIDLen = 64

// Validate checks every field a reader relies on; failures are
// ErrCorruptManifest errors.
func (m *Manifest) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrCorruptManifest, fmt.Sprintf(format, args...))
	}
	if m.Version < 1 || m.Version > ManifestVersion {
		return bad("manifest_version %d, this build reads 1 to %d", m.Version, ManifestVersion)
	}
	if err := ValidateSnapshotID(m.ID); err != nil {
		return bad("%v", err)
	}
	if err := m.Shard.Validate(); err != nil {
		return bad("shard: %v", err)
	}
	if m.StartTime.IsZero() || m.EndTime.Before(m.StartTime) {
		return bad("start time %v, end time %v", m.StartTime, m.EndTime)
	}
	c := m.Commit
	if c.HistoryUUID == "" || len(c.HistoryUUID) > 128 {
		return bad("history UUID %q", c.HistoryUUID)
	}
	for _, s := range []seqno.SeqNo{c.MaxSeqNo, c.LocalCheckpoint, c.GlobalCheckpoint, c.MinRetainedSeqNo} {
		if s < seqno.Unassigned {
			return bad("seqno %d below %d", s, seqno.Unassigned)
		}
	}
	if c.LocalCheckpoint > c.MaxSeqNo {
		return bad("local checkpoint %v above max seqno %v", c.LocalCheckpoint, c.MaxSeqNo)
	}
	if c.WriterVersion == "" || len(c.WriterVersion) > 64 {
		return bad("writer version %q", c.WriterVersion)
	}
	if c.FormatVersion < 1 {
		return bad("format version %d", c.FormatVersion)
	}
	blobs := BlobPrefix(m.Shard)
	for i, f := range m.Files {
		if err := shardstore.ValidateName(f.Name); err != nil {
			return bad("file %d: %v", i, err)
		}
		if i > 0 && m.Files[i-1].Name >= f.Name {
			return bad("files not sorted by name or %s listed twice", f.Name)
		}
		if f.Length < 4 {
			return bad("file %s: length %d, too short for its checksum footer", f.Name, f.Length)
		}
		if len(f.WriterUUID) > maxWriterUUIDLen || strings.ContainsFunc(f.WriterUUID, func(r rune) bool {
			return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F' || r == '-')
		}) {
			return bad("file %s: writer UUID %q", f.Name, f.WriterUUID)
		}
		id, ok := strings.CutPrefix(f.Blob, blobs)
		if !ok {
			return bad("file %s: blob %q is not under %s", f.Name, f.Blob, blobs)
		}
		if err := shardstore.ValidateName(id); err != nil {
			return bad("file %s: blob %q: %v", f.Name, f.Blob, err)
		}
	}
	return nil
}
