package engine

import (
	"errors"

	"github.com/recoverd/recoverd/seqno"
)

// The errors of the contract. An engine wraps them (fmt.Errorf with %w and
// words that say what to do); recoverd compares with errors.Is and maps
// each to one gRPC status (transfer.ToStatus). The remote implementation
// carries them across the socket, so an error that wraps none of them is
// an internal error to recoverd: retried only if it is a transport error.
var (
	// ErrNotFound: the shard is not on this node, or the file is not in
	// the pinned commit, or the staging is not in use.
	ErrNotFound = errors.New("engine: not found")
	// ErrNoCommit: the shard is being created by a recovery onto this
	// node and has no commit yet (it exists once the recovery publishes).
	// Engine.Shard answers it wrapped together with ErrNotFound; a Target
	// answers it alone for what needs a commit (Pin, ReadOps, Flush).
	ErrNoCommit = errors.New("engine: the shard has no commit yet")
	// ErrUnavailable: the shard cannot be read now for a reason that
	// proves nothing about its data (EIO, EMFILE, EACCES, its lock held by
	// another process, a format newer than the engine reads). Retried;
	// never a reason to move the copy aside.
	ErrUnavailable = errors.New("engine: shard unavailable")
	// ErrCorrupt: proven damage, a checksum or format failure. The only
	// error that lets OpenTarget move a copy aside.
	ErrCorrupt = errors.New("engine: corrupt data")
	// ErrClosed: the engine, or this copy, is closed (the node is stopping,
	// or the copy was replaced: get a new handle).
	ErrClosed = errors.New("engine: closed")
	// ErrInvalidName: a name or id that must not touch a path
	// (ValidateName).
	ErrInvalidName = errors.New("engine: invalid name")
	// ErrInvalidArgument: any other input no caller can mean: a negative
	// or inverted seqno range, a retaining seqno below 0, commit data that
	// contradicts itself, a file listed twice, a pin of another shard.
	ErrInvalidArgument = errors.New("engine: invalid argument")
	// ErrOutOfRange: ops asked past the copy's max seqno.
	ErrOutOfRange = errors.New("engine: seqno out of range")
	// ErrHistoryMismatch: the copy's history UUID is not the one the
	// caller expects; copies of different histories never exchange ops.
	ErrHistoryMismatch = errors.New("engine: history mismatch")
	// ErrStaleTerm: Apply refused ops of a primary term newer than any the
	// copy knows while the copy holds ops above its global checkpoint
	// (doc.go, "Terms").
	ErrStaleTerm = errors.New("engine: the copy holds ops of an older primary term above its global checkpoint")
	// ErrConflict: Publish would replace a file of the current commit with
	// other content under the same name.
	ErrConflict = errors.New("engine: file conflicts with the current commit")
	// ErrStagingExists: a staging of that recovery id is in use.
	ErrStagingExists = errors.New("engine: staging already in use")
	// ErrWritesRefused: a recovery onto this node is replacing the shard
	// (RefuseWrites); write once it is done or cancelled.
	ErrWritesRefused = errors.New("engine: writes refused while a recovery replaces the shard")
	// ErrPinLost: the pin was released or expired; its paths promise
	// nothing any more. Pin again (and re-plan).
	ErrPinLost = errors.New("engine: commit pin released or expired")

	// The seqno sentinels, named here so that an engine author finds every
	// error of the contract in one place; they are the same values.

	// ErrCompacted: ops asked below what the copy retains; a file copy is
	// needed.
	ErrCompacted = seqno.ErrCompacted
	// ErrLeaseLost: the retention lease expired or was removed.
	ErrLeaseLost = seqno.ErrLeaseLost
	// ErrLeaseExists: a live lease of that id exists.
	ErrLeaseExists = seqno.ErrLeaseExists
	// ErrNotHolder: the lease is another holder's.
	ErrNotHolder = seqno.ErrNotHolder
	// ErrTooManyLeases: the holder holds as many leases on the shard as
	// it may.
	ErrTooManyLeases = seqno.ErrTooManyLeases
)
