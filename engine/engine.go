package engine

import (
	"context"

	"github.com/recoverd/recoverd/seqno"
)

// Engine is the storage engine of one node as recoverd sees it: the shards
// it holds, and the node-wide calls of a recovery onto the node. Every
// method is safe for concurrent use; every error wraps a sentinel of
// errors.go.
type Engine interface {
	// Version is what the engine writes and reads.
	Version() Version

	// Shards lists every shard of the node that holds a commit, with its
	// state (open, unavailable or corrupt and why), in no order. A shard a
	// recovery is creating (no commit yet) is not listed. The engine may
	// open shards lazily: a shard never asked for since the engine started
	// may be missing from the list until its first access.
	Shards(ctx context.Context) ([]ShardStatus, error)

	// Shard returns a committed shard of the node, opening it if need be.
	// It creates, moves and repairs nothing. A shard the node does not
	// hold answers ErrNotFound; one a recovery is creating answers
	// ErrNotFound and ErrNoCommit (both wrapped: peers are told the node
	// does not hold it); one that cannot be read now ErrUnavailable; one
	// proven damaged ErrCorrupt. A handle stays usable until the engine
	// closes the copy (Close, RemoveUncommitted, a copy moved aside), then
	// its calls answer ErrClosed: ask again.
	Shard(ctx context.Context, id ShardID) (Shard, error)

	// OpenTarget returns the copy a recovery writes into. A shard the node
	// does not hold is created without a commit: it is no shard of the
	// node (not listed, not served by Shard) until the recovery publishes
	// into it. A shard proven damaged (ErrCorrupt) is moved aside, never
	// deleted, and a copy without a commit takes its place; replaced then
	// says why, for the planner and the operator. A shard that cannot be
	// read now (ErrUnavailable) fails the call and stays as it is: a
	// recovery must not replace a copy that was not proven bad.
	OpenTarget(ctx context.Context, id ShardID) (t Target, replaced string, err error)

	// RemoveUncommitted closes and deletes the copy of id if it has no
	// commit (the recovery that created it ended without publishing:
	// nothing of it was ever a shard). A committed copy, or none, is left
	// alone and is no error.
	RemoveUncommitted(ctx context.Context, id ShardID) error

	// SweepUncommitted deletes every copy without a commit that no
	// recovery uses (a Target not yet handed back by RemoveUncommitted)
	// and whose id is not in keep, and returns their ids: what recoveries
	// that never published left when recoverd or the engine stopped.
	// recoverd calls it at start, with the shards its resumed recoveries
	// write into as keep.
	SweepUncommitted(ctx context.Context, keep map[ShardID]bool) ([]ShardID, error)

	// RefuseWrites makes the engine refuse primary writes to shard id
	// (index, delete, merge, promote: ErrWritesRefused, naming
	// recoveryID) until ResumeWrites is called with the same recovery id:
	// a recovery is replacing the copy, and its publish would drop what
	// they wrote. Replicated ops (a primary's ops applied to this copy)
	// and flushes go on: the recovery either replaces them or fetches the
	// same ops from its source. The shard need not exist (a recovery
	// refuses writes from the moment it is accepted). Several recovery ids
	// may refuse at once; writes resume when none is left. Refusals live
	// in the engine's memory and outlive the recoverd that asked (an
	// engine process beside it keeps refusing while recoverd restarts):
	// a recoverd that starts refuses again for the recoveries it resumes
	// (the engine may have restarted too) and lifts the refusals of those
	// it cannot resume. Refusing again for the same id is no error.
	RefuseWrites(ctx context.Context, id ShardID, recoveryID string) error
	// ResumeWrites lifts the refusal recoveryID holds on id; one it does
	// not hold is no error.
	ResumeWrites(ctx context.Context, id ShardID, recoveryID string) error

	// Close releases the engine: in process it closes every copy (their
	// ops stay durable in their op logs), abandons the stagings not
	// suspended and releases every pin; a remote client closes its
	// connection. Calls after Close answer ErrClosed.
	Close() error
}

// Shard is one committed copy: what a source serves to a recovering peer
// and to a snapshot, and what cleanup sweeps.
type Shard interface {
	ID() ShardID
	Reader
	Retention
	// Sweep removes what failed or interrupted work left in the copy:
	// stagings of recoveries neither in use in the engine nor in
	// keepStaging (by recovery id), temp files of interrupted durable
	// writes old enough not to belong to one in progress, files neither
	// the current commit nor a pin references, and retention leases past
	// their TTL. It never removes what the current commit or a pin
	// references, nor what it does not recognise. On error the result
	// holds what was removed before it.
	Sweep(ctx context.Context, keepStaging map[string]bool) (SweepResult, error)
}

// Reader is the read side of a copy: its metadata, commits pinned for
// reading their files, ops by seqno, and content digests.
type Reader interface {
	// Info returns the copy's current commit, live seqnos, retained op
	// range and leases.
	Info(ctx context.Context) (ShardInfo, error)

	// Pin pins the current commit: its files stay readable at the paths
	// Pin.Path gives, unchanged, however many commits follow, until the
	// pin is released or expires (PinOptions.TTL). A copy without a
	// commit answers ErrNoCommit.
	Pin(ctx context.Context, opts PinOptions) (Pin, error)

	// ReadOps calls fn with the ops of req.Range in seqno order, in
	// batches the engine sizes (fn owns each batch), every op with the
	// term it was assigned under; no-ops are included; a seqno never
	// processed (a gap above the local checkpoint) is absent. A range
	// starting below Info.Retained answers ErrCompacted, one ending past
	// the max seqno ErrOutOfRange, a negative or inverted one
	// ErrInvalidArgument, a copy of another history than req.History
	// ErrHistoryMismatch; each before fn is called. An error fn returns
	// stops the read and is returned; so is ctx's.
	ReadOps(ctx context.Context, req OpsRequest, fn func([]Op) error) error

	// DigestAt returns a digest of the copy's content as the ops at or
	// below upTo make it (upTo seqno.Unassigned: every op the copy holds),
	// and the seqno it covers: two copies holding the same ops up to upTo
	// answer the same digest, whatever their files and whatever either
	// holds above upTo. base, a pin of this copy, is the commit to start
	// from when the current one holds ops past upTo (nil: the current
	// commit). Content the copy no longer holds at upTo answers
	// ErrCompacted. Writes go on while it runs; ctx cancels it.
	DigestAt(ctx context.Context, base Pin, upTo seqno.SeqNo) (digest string, at seqno.SeqNo, err error)
}

// Retention is a copy's retention leases: each keeps every op at or above
// its retaining seqno readable by ReadOps until it expires (not renewed for
// Info.LeaseTTL) or is released. Leases are durable: they survive a
// restart of the engine.
type Retention interface {
	// AcquireLease takes a new lease. An id held by a live lease answers
	// ErrLeaseExists (one that expired is replaced), a retaining seqno
	// below what the copy retains ErrCompacted, a holder at its bound
	// ErrTooManyLeases.
	AcquireLease(ctx context.Context, req LeaseRequest) (seqno.RetentionLease, error)
	// RenewLease restarts a lease's TTL and may raise its retaining seqno
	// (seqno.Unassigned keeps it; lowering it is ErrInvalidArgument). A
	// lease unknown or expired answers ErrLeaseLost; another holder's
	// live lease ErrNotHolder.
	RenewLease(ctx context.Context, id, holder string, retaining seqno.SeqNo) (seqno.RetentionLease, error)
	// ReleaseLease removes a lease; an unknown one is no error, another
	// holder's live one ErrNotHolder.
	ReleaseLease(ctx context.Context, id, holder string) error
	// HandOff turns a recovery's lease into the recovered copy's lease and
	// makes the copy part of the engine's replication from req.From
	// (doc.go, "Handing the copy over to replication"). A recovery lease
	// that is gone answers ErrLeaseLost; an engine that has no
	// replication of its own answers errors.ErrUnsupported, and recoverd
	// then releases the lease as it ends.
	HandOff(ctx context.Context, req HandOff) (seqno.RetentionLease, error)
}

// Pin keeps one commit's files readable at their paths.
type Pin interface {
	// ID names the pin within the engine (for logs, and the remote
	// protocol).
	ID() string
	// Metadata is the pinned commit.
	Metadata() Metadata
	// Path returns where this process reads the file name of the pinned
	// commit: an absolute path on the data volume, opened with os.Open
	// (and sent with sendfile) by recoverd. A name not in the commit
	// answers ErrNotFound, an invalid one ErrInvalidName, a released or
	// expired pin ErrPinLost. The file at the path is the commit's until
	// the pin ends; a descriptor opened before stays readable after.
	Path(name string) (string, error)
	// Renew restarts the pin's TTL (ErrPinLost once it ended).
	Renew(ctx context.Context) error
	// Release ends the pin; the files no commit or other pin needs may go.
	// Releasing twice is no error.
	Release(ctx context.Context) error
}

// Target is a copy a recovery writes into (Engine.OpenTarget). It is also
// a Shard, whose read side answers ErrNoCommit while it has no commit.
type Target interface {
	Shard
	// StartStaging opens the staging area of a recovery (recoveryID, a
	// valid name). One left by this recovery before a restart (of
	// recoverd or of the engine) is handed back as it was, with what
	// recoverd wrote in it: the recovery resumes from there. A staging of
	// that id in use answers ErrStagingExists.
	StartStaging(ctx context.Context, recoveryID string) (Staging, error)
	// Apply applies ops a primary assigned (the recovery's catch-up after
	// Publish, or ops-only recovery), in any order, each with its own
	// seqno and term; a seqno already processed is skipped. It returns
	// once they are durable. It refuses, whole, a batch of a newer term
	// than any the copy knows while the copy holds ops above its global
	// checkpoint (ErrStaleTerm).
	Apply(ctx context.Context, ops []Op) error
	// AdoptTerm raises the copy's own term to term (never lowers it); the
	// next commit records it. A recovery calls it once the copy holds its
	// source's history, before the last Flush.
	AdoptTerm(ctx context.Context, term uint64) error
	// Flush commits every op applied so far: afterwards Info().Meta has
	// them, at or below its local checkpoint.
	Flush(ctx context.Context) error
}

// Staging is the staging area of one recovery: a directory recoverd writes
// files into, and the ops it stages with them, published together in one
// commit or abandoned. Nothing in it is read as the shard's data before
// Publish.
type Staging interface {
	ID() string
	// Dir is the staging directory, an absolute path on the data volume
	// in this process's view. recoverd creates the files of the commit in
	// it under their final names (regular files, a valid name each),
	// writes, verifies and fsyncs them itself, and keeps its own records
	// under names starting with a dot and in the subdirectory
	// progress.staged; the engine may keep subdirectories of other names
	// there (the reference engine: ops.staged), and nothing else.
	Dir() string
	// AppendOps stages ops to be published with the files (the ops above
	// the file set's local checkpoint); they need not be durable before
	// Publish.
	AppendOps(ctx context.Context, ops []Op) error
	// DiscardOps drops the ops staged so far; the files stay.
	DiscardOps(ctx context.Context) error
	// Publish makes files (the whole new file set: files staged in Dir
	// plus files of the current commit to keep, the same by
	// FileMeta.SameAs) and the staged ops the copy's content, with commit
	// as its commit data, in one atomic commit (doc.go, "Publish"). It
	// checks first and changes nothing when a check fails: a listed file
	// neither staged with exactly its metadata nor the same in the current
	// commit (ErrInvalidArgument, or ErrCorrupt when a staged file fails
	// the engine's own checks), a staged file replacing another of the
	// same name (ErrConflict), commit data that contradicts itself
	// (ErrInvalidArgument), a format newer than the engine reads. On
	// success the staging is gone; on error the copy is at its previous
	// commit and the staging stays.
	Publish(ctx context.Context, files []FileMeta, commit CommitData) error
	// Abandon deletes the staging and all in it.
	Abandon(ctx context.Context) error
	// Suspend ends the staging's use and keeps its directory: recoverd is
	// stopping, and the recovery resumes from it (StartStaging with the
	// same id) when it starts again.
	Suspend(ctx context.Context) error
}
