package rpcerr

import "errors"

// The sentinels of transfer and recovery that the table names. They are
// defined here because those packages import this one; each keeps its own
// under the name its callers know (transfer.ErrPinNotFound,
// recovery.ErrRunning, ...), with the text it always had.
var (
	// ErrPinNotFound means the source no longer holds the commit pin (it
	// expired or was released): pin again and re-plan.
	// transfer.ErrPinNotFound.
	ErrPinNotFound = errors.New("transfer: commit pin not found")
	// ErrHistoryMismatch means source and target histories differ: the
	// copies must not exchange ops. transfer.ErrHistoryMismatch.
	ErrHistoryMismatch = errors.New("transfer: history UUID mismatch")

	// ErrRecoveryRunning: another recovery of the shard runs, or the
	// recovery id is taken. recovery.ErrRunning.
	ErrRecoveryRunning = errors.New("recovery: a recovery of this shard is running")
	// ErrRecoveryNotFound: no recovery with that id. recovery.ErrNotFound.
	ErrRecoveryNotFound = errors.New("recovery: no such recovery")
	// ErrRecoveryCancelled is the cause of a recovery cancelled by a
	// caller. recovery.ErrCancelled.
	ErrRecoveryCancelled = errors.New("recovery: cancelled")
	// ErrSourceAddress marks a source address that is not host:port.
	// recovery.ErrSourceAddress.
	ErrSourceAddress = errors.New("recovery: invalid source address")
	// ErrSourceUnreachable marks a source that could not be connected to
	// when the recovery was asked for. recovery.ErrSourceUnreachable.
	ErrSourceUnreachable = errors.New("recovery: source unreachable")
	// ErrRecoveryRefused wraps the planner's refusal of a recovery (a
	// target ahead of its source, versions it cannot read, ...).
	// recovery.ErrRefused.
	ErrRecoveryRefused = errors.New("recovery refused")
	// ErrNoSpace: what the plan stages does not fit on the target's disk
	// with its margin. recovery.ErrNoSpace.
	ErrNoSpace = errors.New("recovery: not enough free space on the target")
)
