package rpcerr

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/planner"
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/snapshot"
)

// rule is one row of the table: an error that wraps sentinel is answered
// with code and reason; hint, when set, is what ToStatus adds to its
// message.
type rule struct {
	sentinel error
	code     codes.Code
	reason   pb.ErrorReason
	hint     string
}

// table maps every sentinel a server may answer to its status; the first
// row whose sentinel an error wraps decides, so a row comes before those
// of sentinels the same errors may also wrap, the most specific first. FromStatus reads it the
// other way: a reason stands for the sentinel of its first row.
//
// transfer's client-side errors (a stream idle, cut short or corrupt, a
// spent retry budget, a protocol violation) are not here: no server
// answers them; a server that met them says how it failed (ExplainPlan:
// Unavailable when the source stopped answering).
var table = []rule{
	// seqno: ops, retention leases.
	{seqno.ErrCompacted, codes.FailedPrecondition, pb.ErrorReason_OPS_COMPACTED, "a file copy is needed"},
	{seqno.ErrLeaseLost, codes.NotFound, pb.ErrorReason_LEASE_LOST, "re-plan the recovery"},
	{seqno.ErrLeaseExists, codes.AlreadyExists, pb.ErrorReason_LEASE_EXISTS, "use another lease id or release it"},
	{seqno.ErrNotHolder, codes.PermissionDenied, NoReason, "only the holder that took it may renew or release it"},
	{seqno.ErrTooManyLeases, codes.ResourceExhausted, pb.ErrorReason_TOO_MANY_LEASES, "release one, or retry once one expired"},

	// transfer: pins and histories.
	{ErrHistoryMismatch, codes.FailedPrecondition, pb.ErrorReason_HISTORY_MISMATCH, ""},
	{ErrPinNotFound, codes.NotFound, pb.ErrorReason_PIN_NOT_FOUND, ""},

	// recovery: the RecoveryService's answers.
	{ErrRecoveryRunning, codes.AlreadyExists, pb.ErrorReason_RECOVERY_RUNNING, ""},
	{ErrRecoveryNotFound, codes.NotFound, pb.ErrorReason_RECOVERY_NOT_FOUND, ""},
	{ErrRecoveryCancelled, codes.Canceled, NoReason, ""},
	{ErrSourceAddress, codes.InvalidArgument, NoReason, ""},
	{ErrSourceUnreachable, codes.Unavailable, pb.ErrorReason_SOURCE_UNREACHABLE, ""},
	{ErrRecoveryRefused, codes.FailedPrecondition, NoReason, ""},
	{ErrNoSpace, codes.FailedPrecondition, NoReason, ""},

	// planner: a plan that breaks its own rules is a bug.
	{planner.ErrInvalidPlan, codes.Internal, NoReason, ""},

	// engine: the engine contract's errors, whatever engine answers them
	// (shardstore's sentinels are these). A shard without a commit is one
	// a recovery is creating; the engine's shard lookup wraps both
	// ErrNotFound and ErrNoCommit for it, and the peer API, which tells
	// peers it does not hold the shard, asks for ErrNotFound's answer.
	{engine.ErrNoCommit, codes.FailedPrecondition, pb.ErrorReason_RECOVERY_RUNNING, ""},
	{engine.ErrWritesRefused, codes.FailedPrecondition, pb.ErrorReason_RECOVERY_RUNNING, ""},
	{engine.ErrNotFound, codes.NotFound, pb.ErrorReason_SHARD_NOT_FOUND, ""},
	{engine.ErrPinLost, codes.NotFound, pb.ErrorReason_PIN_NOT_FOUND, "pin the commit again and re-plan"},
	{engine.ErrHistoryMismatch, codes.FailedPrecondition, pb.ErrorReason_HISTORY_MISMATCH, ""},
	{engine.ErrInvalidName, codes.InvalidArgument, NoReason, ""},
	{engine.ErrInvalidArgument, codes.InvalidArgument, NoReason, ""},
	{engine.ErrOutOfRange, codes.OutOfRange, NoReason, ""},
	{engine.ErrClosed, codes.Unavailable, NoReason, "the shard is closing, retry later"},
	{engine.ErrUnavailable, codes.Unavailable, NoReason, "the shard cannot be read now; it stays in place, retry later"},
	{engine.ErrCorrupt, codes.DataLoss, NoReason, ""},
	{engine.ErrStaleTerm, codes.FailedPrecondition, NoReason, ""},
	{engine.ErrStagingExists, codes.AlreadyExists, NoReason, ""},
	{engine.ErrConflict, codes.FailedPrecondition, NoReason, ""},

	// snapshot: the repository. An ErrAccessDenied error is also an
	// ErrUnavailable one (the repository cannot be used) and answered so:
	// the caller's own credentials are not in question.
	{snapshot.ErrNotFound, codes.NotFound, pb.ErrorReason_SNAPSHOT_NOT_FOUND, ""},
	{snapshot.ErrUnavailable, codes.Unavailable, pb.ErrorReason_REPOSITORY_UNAVAILABLE, ""},
	{snapshot.ErrConcurrentDeletion, codes.Aborted, NoReason, ""},
	{snapshot.ErrChecksum, codes.DataLoss, NoReason, ""},
	{snapshot.ErrCorruptManifest, codes.DataLoss, NoReason, ""},

	// An engine without a feature of the contract (HandOff without
	// replication of its own).
	{errors.ErrUnsupported, codes.Unimplemented, NoReason, ""},

	// The context: the caller cancelled, or its deadline passed. Last: an
	// error that says more (a repository that timed out is unavailable;
	// net's timeouts are context.DeadlineExceeded too) answers that.
	{context.Canceled, codes.Canceled, NoReason, ""},
	{context.DeadlineExceeded, codes.DeadlineExceeded, NoReason, ""},
}

// lookup returns the first row whose sentinel err wraps.
func lookup(err error) (rule, bool) {
	if err == nil {
		return rule{}, false
	}
	for _, r := range table {
		if errors.Is(err, r.sentinel) {
			return r, true
		}
	}
	return rule{}, false
}

// sentinelOf returns the sentinel of the first row of reason, or nil.
func sentinelOf(reason pb.ErrorReason) error {
	if reason == NoReason {
		return nil
	}
	for _, r := range table {
		if r.reason == reason {
			return r.sentinel
		}
	}
	return nil
}
