package shardstore

import "github.com/recoverd/recoverd/engine"

// FormatVersion is the on-disk format this build writes and the newest it reads.
const FormatVersion = 1

// WriterVersion is the version of recoverd's engine recorded in every commit.
const WriterVersion = "0.1.0"

// The contract's vocabulary (package engine) is shardstore's: these names
// are aliases, so that a shardstore.FileMeta is an engine.FileMeta and
// code written against either speaks to the other.
type (
	// ShardID names one shard: <data>/shards/<Index>/<Shard>.
	ShardID = engine.ShardID
	// FileMeta describes one file of a commit. CRC32C is the checksum
	// stored in the file's footer: the CRC32C of every byte before the
	// last four.
	FileMeta = engine.FileMeta
	// CommitData is the user data a commit point publishes together with
	// its file list.
	CommitData = engine.CommitData
	// Metadata is what a shard copy tells a planner about itself: its
	// current commit's files and user data.
	Metadata = engine.Metadata
)

// MaxNameLen bounds every name that comes from outside.
const MaxNameLen = engine.MaxNameLen

// ErrInvalidName is returned for a name that must not touch a path.
var ErrInvalidName = engine.ErrInvalidName

// ValidateName checks a file, index or recovery name that came from outside
// (a peer, a manifest, a request) before it is joined to a path
// (engine.ValidateName).
func ValidateName(name string) error { return engine.ValidateName(name) }

// ParseShardID parses "index/shard".
func ParseShardID(s string) (ShardID, error) { return engine.ParseShardID(s) }

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
