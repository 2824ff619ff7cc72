package shardstore

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/recoverd/recoverd/seqno"
)

// FormatVersion is the on-disk format this build writes and the newest it reads.
const FormatVersion = 1

// WriterVersion is the version of recoverd's engine recorded in every commit.
const WriterVersion = "0.1.0"

// MaxNameLen bounds every name that comes from outside.
const MaxNameLen = 200

// ErrInvalidName is returned for a name that must not touch a path.
var ErrInvalidName = errors.New("shardstore: invalid name")

// ValidateName checks a file, index or recovery name that came from outside
// (a peer, a manifest, a request) before it is joined to a path: 1 to
// MaxNameLen characters from [A-Za-z0-9._-], not starting with a dot (which
// also rules out "." and ".."; dot-names are our temp files).
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidName)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: %d bytes long, at most %d allowed", ErrInvalidName, len(name), MaxNameLen)
	}
	if name[0] == '.' {
		return fmt.Errorf("%w: %q starts with a dot", ErrInvalidName, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q has character %q at %d; only letters, digits, '.', '_' and '-' are allowed", ErrInvalidName, name, c, i)
		}
	}
	return nil
}

// ShardID names one shard: <data>/shards/<Index>/<Shard>.
type ShardID struct {
	Index string `json:"index"`
	Shard int    `json:"shard"`
}

// Validate checks the id before it becomes a path.
func (id ShardID) Validate() error {
	if err := ValidateName(id.Index); err != nil {
		return fmt.Errorf("index name: %w", err)
	}
	if id.Shard < 0 || id.Shard > 1<<20 {
		return fmt.Errorf("%w: shard number %d out of range", ErrInvalidName, id.Shard)
	}
	return nil
}

func (id ShardID) String() string { return id.Index + "/" + strconv.Itoa(id.Shard) }

// ParseShardID parses "index/shard".
func ParseShardID(s string) (ShardID, error) {
	i := strings.LastIndexByte(s, '/')
	if i < 0 {
		return ShardID{}, fmt.Errorf("%w: shard %q is not index/number", ErrInvalidName, s)
	}
	n, err := strconv.Atoi(s[i+1:])
	if err != nil {
		return ShardID{}, fmt.Errorf("%w: shard %q is not index/number", ErrInvalidName, s)
	}
	id := ShardID{Index: s[:i], Shard: n}
	return id, id.Validate()
}

// FileMeta describes one file of a commit. CRC32C is the checksum stored in
// the file's footer: the CRC32C of every byte before the last four.
type FileMeta struct {
	Name       string `json:"name"`
	Length     int64  `json:"length"`
	CRC32C     uint32 `json:"crc32c"`
	WriterUUID string `json:"writer_uuid,omitempty"`
}

// SameAs reports whether two files are the same (DESIGN.md section 3): name,
// length and checksum match and, where both carry one, the writer UUID.
func (f FileMeta) SameAs(o FileMeta) bool {
	if f.Name != o.Name || f.Length != o.Length || f.CRC32C != o.CRC32C {
		return false
	}
	return f.WriterUUID == "" || o.WriterUUID == "" || f.WriterUUID == o.WriterUUID
}

// CommitData is the user data a commit point publishes together with its
// file list.
type CommitData struct {
	HistoryUUID      string      `json:"history_uuid"`
	MaxSeqNo         seqno.SeqNo `json:"max_seqno"`
	LocalCheckpoint  seqno.SeqNo `json:"local_checkpoint"`
	GlobalCheckpoint seqno.SeqNo `json:"global_checkpoint"`
	// MinRetainedSeqNo is the lowest seqno whose op the shard's op log still
	// holds; ops below it are only in segments.
	MinRetainedSeqNo seqno.SeqNo `json:"min_retained_seqno"`
	PrimaryTerm      uint64      `json:"primary_term"`
	WriterVersion    string      `json:"writer_version"`
	FormatVersion    int         `json:"format_version"`
	// MaxTermAboveGlobalCheckpoint is the highest primary term of the ops
	// the commit holds above its global checkpoint (0 when it holds none).
	// PrimaryTerm is the copy's own term, never raised from the ops it
	// receives; the planner trusts only this field to tell whether a
	// copy's ops above its global checkpoint may differ from a newer
	// primary's.
	MaxTermAboveGlobalCheckpoint uint64 `json:"max_term_above_global_checkpoint,omitempty"`
}

// Stats returns the seqno statistics recorded in the commit.
func (c CommitData) Stats() seqno.Stats {
	return seqno.Stats{MaxSeqNo: c.MaxSeqNo, LocalCheckpoint: c.LocalCheckpoint, GlobalCheckpoint: c.GlobalCheckpoint}
}

// Metadata is what a shard copy tells a planner about itself: its current
// commit's files and user data.
type Metadata struct {
	Generation uint64     `json:"generation"`
	Files      []FileMeta `json:"files"` // sorted by name
	Commit     CommitData `json:"commit"`
}

// TotalBytes is the sum of the file lengths.
func (m Metadata) TotalBytes() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Length
	}
	return n
}

// Lookup finds a file by name; Files must be sorted by name, as every
// Metadata this package returns is.
func (m Metadata) Lookup(name string) (FileMeta, bool) {
	i, ok := slices.BinarySearchFunc(m.Files, name, func(f FileMeta, n string) int { return strings.Compare(f.Name, n) })
	if !ok {
		return FileMeta{}, false
	}
	return m.Files[i], true
}

// DiffResult splits the source's files by what the target holds.
type DiffResult struct {
	Identical []FileMeta `json:"identical"` // the target has the same file
	Different []FileMeta `json:"different"` // the target has a file of that name with other content
	Missing   []FileMeta `json:"missing"`   // the target has no file of that name
}

// Diff compares the files of a source commit with a target's. Every source
// file lands in exactly one of the three lists, in the source's order. It
// does not rely on either list being sorted (one may come from a remote).
func Diff(source, target Metadata) DiffResult {
	var d DiffResult
	byName := make(map[string]FileMeta, len(target.Files))
	for _, f := range target.Files {
		byName[f.Name] = f
	}
	for _, f := range source.Files {
		t, ok := byName[f.Name]
		switch {
		case !ok:
			d.Missing = append(d.Missing, f)
		case f.SameAs(t):
			d.Identical = append(d.Identical, f)
		default:
			d.Different = append(d.Different, f)
		}
	}
	return d
}
