package engine

import (
	"time"

	"github.com/recoverd/recoverd/seqno"
)

// Version is what an engine writes and reads.
type Version struct {
	// Writer is the engine version recorded in every commit it writes
	// (CommitData.WriterVersion).
	Writer string
	// MaxFormat is the newest on-disk format the engine reads
	// (CommitData.FormatVersion): a planner never restores a snapshot or
	// files of a newer format onto it.
	MaxFormat int
}

// State is what Engine.Shards says of a committed shard.
type State string

const (
	// StateOpen: the copy is open and served.
	StateOpen State = "open"
	// StateUnavailable: its last open failed with an error that proves
	// nothing about its data (ErrUnavailable); it stays where it is and is
	// opened again on its next access.
	StateUnavailable State = "unavailable"
	// StateCorrupt: its last open proved it damaged (ErrCorrupt); a
	// recovery onto the node moves it aside (OpenTarget).
	StateCorrupt State = "corrupt"
)

// ShardStatus is one entry of Engine.Shards.
type ShardStatus struct {
	ID    ShardID
	State State
	// Reason is the error of the last failed open (empty when open).
	Reason string
	// Since is when the copy entered this state (zero when open).
	Since time.Time
}

// ShardInfo is what a copy tells recoverd about itself: the current commit,
// the live seqnos (ops applied since the commit included), the ops it can
// still serve, and its retention leases.
type ShardInfo struct {
	ID ShardID
	// Committed is false for a copy a recovery is creating (OpenTarget on
	// a shard the node does not hold) until its first Publish: its Meta is
	// generation 0 with no file, no history and every seqno at -1.
	Committed bool
	// Meta is the current commit. Its history UUID is the copy's: only a
	// Publish changes it, and it is a commit.
	Meta Metadata
	// Seq is live: the max seqno and local checkpoint count the ops
	// applied since the commit; the global checkpoint is the copy's.
	Seq seqno.Stats
	// PrimaryTerm is the copy's own term, live (a promotion or AdoptTerm
	// raises it before the next commit records it).
	PrimaryTerm uint64
	// Retained is the seqno range ReadOps serves: from the retention floor
	// to the max seqno (empty when the copy holds no op).
	Retained seqno.Range
	// AvgOpBytes is the mean encoded size of the ops retained, for a
	// planner estimating what an op replay reads (0: unknown or none).
	AvgOpBytes int64
	// Leases are the live retention leases, by id; LeaseTTL is how long
	// one lives without renewal.
	Leases   []seqno.RetentionLease
	LeaseTTL time.Duration
}

// PinOptions tune Shard.Pin.
type PinOptions struct {
	// TTL releases the pin once it has not been renewed for this long
	// (Pin.Renew). Zero holds it until Release, or until the engine (in
	// process) is closed or the client that took it (remote) is gone.
	TTL time.Duration
}

// OpsRequest asks Reader.ReadOps for a range of ops.
type OpsRequest struct {
	// Range is inclusive; an empty range (From == To+1) reads nothing.
	Range seqno.Range
	// History is the history UUID the caller expects (required): a copy
	// of another history answers ErrHistoryMismatch and sends nothing.
	History string
}

// LeaseRequest asks Retention.AcquireLease for a new lease.
type LeaseRequest struct {
	// ID names the lease (ValidateName).
	ID string
	// RetainingSeqNo is the lowest seqno the holder needs: every op at or
	// above it stays readable while the lease lives.
	RetainingSeqNo seqno.SeqNo
	// Source says, in words, who asked and why (at most MaxNameLen bytes).
	Source string
	// Holder is the authenticated identity that takes the lease (a node
	// id); only it may renew or release it. Empty: unauthenticated.
	Holder string
	// MaxPerHolder bounds the live leases Holder holds on the shard
	// (0: no bound), ErrTooManyLeases past it.
	MaxPerHolder int
}

// HandOff makes a recovered copy part of the engine's replication
// (doc.go, "Handing the copy over to replication").
type HandOff struct {
	// LeaseID and Holder name the recovery's retention lease on this
	// copy (the source), which becomes the copy's lease.
	LeaseID string
	Holder  string
	// Copy names the recovered copy: the node it lives on (a valid name).
	Copy string
	// From is the first seqno the copy needs by replication: its local
	// checkpoint after the recovery's last catch-up, plus one.
	From seqno.SeqNo
}

// SweepResult says what Shard.Sweep removed, by kind.
type SweepResult struct {
	// Staging lists the recovery ids whose staging was removed.
	Staging []string
	// Temps lists temp files of interrupted durable writes.
	Temps []string
	// Unreferenced lists files no commit or pin references, and other
	// leftovers of replaced content (the reference engine: old op log
	// epochs).
	Unreferenced []string
	// Leases lists the ids of the retention leases that expired.
	Leases []string
}
