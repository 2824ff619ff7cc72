package planner

import (
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

// Kind is the kind of a plan.
type Kind string

const (
	// KindOpsOnly replays ops from the source on the target's own commit; no
	// file moves.
	KindOpsOnly Kind = "ops-only"
	// KindPeer copies the source's commit files from the source node.
	KindPeer Kind = "peer"
	// KindSnapshot restores a snapshot's commit from the repository, then
	// replays the ops above it from the source.
	KindSnapshot Kind = "snapshot"
	// KindHybrid copies the source's commit: files that are the same in the
	// snapshot come from the repository, the others from the source.
	KindHybrid Kind = "hybrid"
	// KindRefused means no plan may run; Reasons say why.
	KindRefused Kind = "refused"
)

// Input is everything the planner knows. It is plain data, filled by the
// caller from the source's and target's metadata, the snapshot repository
// and the node versions.
type Input struct {
	Source   Source   `json:"source"`
	Target   Target   `json:"target"`
	Snapshot Snapshot `json:"snapshot"`
	Settings Settings `json:"settings"`
}

// Source is the copy the recovery reads from (normally the primary).
type Source struct {
	// Meta is the source's current commit: its files and user data.
	Meta shardstore.Metadata `json:"meta"`
	// MaxSeqNo is the highest op the source holds. It may be above the
	// commit's max seqno (ops not flushed yet); it must not be below it.
	MaxSeqNo seqno.SeqNo `json:"max_seqno"`
	// Retained is the range of ops the source's op log can still serve.
	Retained seqno.Range `json:"retained"`
	// Leases are the source's live retention leases.
	Leases []seqno.RetentionLease `json:"leases,omitempty"`
	// OpBytes is the average size of one op in the source's op log, used
	// to estimate the bytes a replay reads off the source; 0 means
	// DefaultOpBytes.
	OpBytes int64 `json:"op_bytes,omitempty"`
	// Version is the writer version the source node runs (semver, "0.1.0").
	Version string `json:"version"`
	// MaxFormat is the newest format version the source reads and writes.
	MaxFormat int `json:"max_format"`
}

// Target is the copy being built.
type Target struct {
	// Meta is the target's current commit; ignored when Empty or
	// Unreadable is set.
	Meta shardstore.Metadata `json:"meta"`
	// Empty marks a brand-new copy with nothing on disk.
	Empty bool `json:"empty,omitempty"`
	// Unreadable, when not empty, says why the target's metadata could not
	// be read (a corrupt commit); the target is then treated as empty.
	Unreadable string `json:"unreadable,omitempty"`
	// Version is the writer version the target node runs.
	Version string `json:"version"`
	// MaxFormat is the newest format version the target reads.
	MaxFormat int `json:"max_format"`
}

// SnapshotState says what the repository answered.
type SnapshotState string

const (
	// SnapshotNone: the repository holds no snapshot of this shard (the
	// empty state means the same).
	SnapshotNone SnapshotState = "none"
	// SnapshotDisabled: no repository is configured.
	SnapshotDisabled SnapshotState = "disabled"
	// SnapshotUnavailable: the repository could not be read; Err says why.
	SnapshotUnavailable SnapshotState = "unavailable"
	// SnapshotAvailable: the latest snapshot of this shard is described.
	SnapshotAvailable SnapshotState = "available"
)

// Snapshot is the latest snapshot of the shard as the repository lists it.
type Snapshot struct {
	State SnapshotState `json:"state"`
	// Err is the repository's error when State is SnapshotUnavailable.
	Err string `json:"err,omitempty"`
	// ID names the snapshot.
	ID string `json:"id,omitempty"`
	// Files are the files of the snapshotted commit, as in its manifest.
	Files []shardstore.FileMeta `json:"files,omitempty"`
	// Commit is the snapshotted commit's user data (history, seqnos, writer
	// and format versions).
	Commit shardstore.CommitData `json:"commit"`
	// BadBlobs are the files of the snapshot whose blobs are marked bad in
	// the repository (a recovery or a verification found them corrupt or
	// missing). Such a snapshot is not used at all, neither restored nor
	// for a hybrid plan, until a verification clears the marks or a newer
	// snapshot, which does not reference those blobs, replaces it.
	BadBlobs []BadBlob `json:"bad_blobs,omitempty"`
}

// BadBlob is a file of a snapshot whose blob is marked bad.
type BadBlob struct {
	File string `json:"file"`
	Blob string `json:"blob"`
	// Why says what was found, by whom and when, in words (may be empty).
	Why string `json:"why,omitempty"`
}

// Settings tune the choice. The zero value does not use snapshots and uses
// the default cost weights; DefaultSettings turns snapshots on.
type Settings struct {
	// UseSnapshots allows snapshot and hybrid plans.
	UseSnapshots bool `json:"use_snapshots"`
	// AllowDataLoss lets a file-based plan overwrite a target that holds
	// ops of the source's history past the source's max seqno; without it
	// such a recovery is refused.
	AllowDataLoss bool `json:"allow_data_loss,omitempty"`
	// SourceByteCost is the cost of one byte read off the source node
	// (files and ops); 0 means DefaultSourceByteCost.
	SourceByteCost float64 `json:"source_byte_cost,omitempty"`
	// RepoByteCost is the cost of one byte read from the repository; 0
	// means DefaultRepoByteCost.
	RepoByteCost float64 `json:"repo_byte_cost,omitempty"`
	// OpCost is an extra cost per op replayed on the target, on top of its
	// bytes (replaying an op is indexing work, copying a file is not);
	// default 0.
	OpCost float64 `json:"op_cost,omitempty"`
}

// Defaults of the settings.
const (
	// DefaultSourceByteCost: a byte off the source, a busy primary.
	DefaultSourceByteCost = 1.0
	// DefaultRepoByteCost: a byte from the repository is a quarter of the
	// price of a byte off the source.
	DefaultRepoByteCost = 0.25
	// DefaultOpBytes is the op size assumed when the source gives none.
	DefaultOpBytes = 1024
)

// DefaultSettings uses snapshots and the default weights.
func DefaultSettings() Settings {
	return Settings{UseSnapshots: true, SourceByteCost: DefaultSourceByteCost, RepoByteCost: DefaultRepoByteCost}
}

// Lease is the retention lease the source must hold while the plan runs.
type Lease struct {
	// RetainingSeqNo is the first op the source must keep: the plan's
	// Ops.From. Ops the source indexes while files move are above it too,
	// so the lease is needed even when Ops is empty.
	RetainingSeqNo seqno.SeqNo `json:"retaining_seqno"`
	// ProtectedBy names a live source lease already retaining every op from
	// RetainingSeqNo on, if any: until the recovery's own lease is taken,
	// that one keeps the ops. Empty means they are retained now but not
	// protected: the recovery takes its lease before moving files and
	// re-plans if the ops are gone by then.
	ProtectedBy string `json:"protected_by,omitempty"`
}

// Plan says where every byte of a recovery comes from.
type Plan struct {
	Kind Kind `json:"kind"`
	// SnapshotID is the snapshot used by a snapshot or hybrid plan.
	SnapshotID string `json:"snapshot_id,omitempty"`
	// Commit is the user data the file set is published with (for ops-only:
	// the target's own commit). Its history is the source's.
	Commit shardstore.CommitData `json:"commit"`
	// The file set of the plan, split by where each file comes from, each
	// list in name order. Every file of the set is in exactly one list.
	Reused       []shardstore.FileMeta `json:"reused"`
	FromSnapshot []shardstore.FileMeta `json:"from_snapshot"`
	FromPeer     []shardstore.FileMeta `json:"from_peer"`
	// Ops is the range of ops to replay from the source after the files
	// are published; From == To+1 when there is none.
	Ops seqno.Range `json:"ops"`
	// Lease is the retention lease the source must hold; nil when refused.
	Lease *Lease `json:"lease,omitempty"`
	// Fallback is the peer plan to run when a snapshot or hybrid plan fails
	// (not when it is cancelled); nil for the other kinds.
	Fallback *Plan `json:"fallback,omitempty"`
	// Estimated bytes: reused on the target, from the repository, files
	// from the source, ops from the source (Ops.Len() times the op size),
	// and BytesFromSource = BytesFromPeer + OpsBytes.
	BytesReused     int64 `json:"bytes_reused"`
	BytesFromRepo   int64 `json:"bytes_from_repo"`
	BytesFromPeer   int64 `json:"bytes_from_peer"`
	OpsBytes        int64 `json:"ops_bytes"`
	BytesFromSource int64 `json:"bytes_from_source"`
	// Cost is the weighted cost the choice compared (Settings).
	Cost float64 `json:"cost"`
	// Reasons, one line per decision taken and per option rejected.
	Reasons []string `json:"reasons"`
}

// Refused reports whether the plan is a refusal.
func (p Plan) Refused() bool { return p.Kind == KindRefused }
