package engine

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/recoverd/recoverd/seqno"
)

// MaxNameLen bounds every name that comes from outside: index names, file
// names, recovery, pin and lease ids.
const MaxNameLen = 200

// ValidateName checks a file, index or recovery name that came from outside
// (a peer, a manifest, a request, recoverd) before it is joined to a path:
// 1 to MaxNameLen characters from [A-Za-z0-9._-], not starting with a dot
// (which also rules out "." and ".."; dot-names are temp files). An engine
// calls it on every name it is handed; the error wraps ErrInvalidName.
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

// ShardID names one shard of an index. The reference engine keeps it in
// <data>/shards/<Index>/<Shard>; another engine may place it anywhere.
type ShardID struct {
	Index string `json:"index"`
	Shard int    `json:"shard"`
}

// Validate checks the id before it becomes a path: the index a valid name
// (ValidateName), the shard number from 0 to 2^20.
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

// FileMeta describes one file of a commit. CRC32C is the CRC32C
// (Castagnoli) of every byte of the file but the last four, which hold it
// (little-endian): a file verifies alone. WriterUUID identifies the writer
// of those bytes (random per file in the reference engine); empty when the
// engine has none.
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
// file list: what a planner reads of a copy.
type CommitData struct {
	// HistoryUUID names the linear history of ops the copy belongs to.
	HistoryUUID string `json:"history_uuid"`
	// MaxSeqNo is the highest seqno the commit holds; LocalCheckpoint the
	// highest at or below which every op is processed and in the commit's
	// files (never above MaxSeqNo); GlobalCheckpoint the primary's, as far
	// as the copy knows it (never above LocalCheckpoint). -1
	// (seqno.NoOpsPerformed) means none.
	MaxSeqNo         seqno.SeqNo `json:"max_seqno"`
	LocalCheckpoint  seqno.SeqNo `json:"local_checkpoint"`
	GlobalCheckpoint seqno.SeqNo `json:"global_checkpoint"`
	// MinRetainedSeqNo is the lowest seqno whose op the shard's op log still
	// holds; ops below it are only in the files.
	MinRetainedSeqNo seqno.SeqNo `json:"min_retained_seqno"`
	// PrimaryTerm is the copy's own term: raised by a promotion or a
	// recovery, never by the ops it receives.
	PrimaryTerm uint64 `json:"primary_term"`
	// WriterVersion is the engine version that wrote the commit;
	// FormatVersion its on-disk format.
	WriterVersion string `json:"writer_version"`
	FormatVersion int    `json:"format_version"`
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

// Metadata is one commit of a copy: its files and user data.
type Metadata struct {
	// Generation numbers the copy's commits, from 1, growing by one per
	// commit; 0 is the commit of a copy that has none yet.
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
// Metadata an engine returns is.
func (m Metadata) Lookup(name string) (FileMeta, bool) {
	i, ok := slices.BinarySearchFunc(m.Files, name, func(f FileMeta, n string) int { return strings.Compare(f.Name, n) })
	if !ok {
		return FileMeta{}, false
	}
	return m.Files[i], true
}

// OpKind says whether an op indexes or deletes a document, or is a no-op.
type OpKind uint8

const (
	OpIndex  OpKind = 0
	OpDelete OpKind = 1
	// OpNoOp takes a seqno and changes no document: a promoted primary
	// fills the gaps below its max seqno with no-ops (Elasticsearch's
	// fillSeqNoGaps). It has no key and no value; op logs store and replay
	// it and op streams carry it.
	OpNoOp OpKind = 2
)

func (k OpKind) String() string {
	switch k {
	case OpDelete:
		return "delete"
	case OpNoOp:
		return "no-op"
	}
	return "index"
}

// Op is one operation on a document: its seqno, the primary term it was
// assigned under, and what it does.
type Op struct {
	Key         string
	SeqNo       seqno.SeqNo
	PrimaryTerm uint64
	Kind        OpKind
	Value       []byte
}
