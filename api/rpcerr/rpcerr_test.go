package rpcerr_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
)

func TestErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		err      error
		code     codes.Code
		sentinel error
	}{
		{fmt.Errorf("x: %w", seqno.ErrCompacted), codes.FailedPrecondition, seqno.ErrCompacted},
		{fmt.Errorf("x: %w", seqno.ErrLeaseLost), codes.NotFound, seqno.ErrLeaseLost},
		{fmt.Errorf("x: %w", seqno.ErrLeaseExists), codes.AlreadyExists, seqno.ErrLeaseExists},
		{fmt.Errorf("x: %w", shardstore.ErrNotFound), codes.NotFound, shardstore.ErrNotFound},
		{fmt.Errorf("x: %w", rpcerr.ErrHistoryMismatch), codes.FailedPrecondition, rpcerr.ErrHistoryMismatch},
		{fmt.Errorf("x: %w", rpcerr.ErrPinNotFound), codes.NotFound, rpcerr.ErrPinNotFound},
		{fmt.Errorf("x: %w", shardstore.ErrInvalidName), codes.InvalidArgument, nil},
		{fmt.Errorf("x: %w", shardstore.ErrClosed), codes.Unavailable, nil},
		{fmt.Errorf("x: %w", shardstore.ErrCorrupt), codes.DataLoss, nil},
		{context.Canceled, codes.Canceled, nil},
		{errors.New("disk on fire"), codes.Internal, nil},
	} {
		st := rpcerr.ToStatus(tc.err)
		if status.Code(st) != tc.code {
			t.Errorf("%v: code %v, want %v", tc.err, status.Code(st), tc.code)
		}
		back := rpcerr.FromStatus(st)
		if tc.sentinel != nil && !errors.Is(back, tc.sentinel) {
			t.Errorf("%v: %v does not wrap %v", tc.err, back, tc.sentinel)
		}
		if status.Code(back) != tc.code {
			t.Errorf("%v: round trip code %v", tc.err, status.Code(back))
		}
	}
}

// Every sentinel a server answers has its code and reason in the table,
// and a reason comes back as its sentinel.
func TestTable(t *testing.T) {
	for _, tc := range []struct {
		err    error
		code   codes.Code
		reason pb.ErrorReason
		back   error // the sentinel FromStatus restores, if any
	}{
		{snapshot.ErrNotFound, codes.NotFound, pb.ErrorReason_SNAPSHOT_NOT_FOUND, snapshot.ErrNotFound},
		{snapshot.ErrUnavailable, codes.Unavailable, pb.ErrorReason_REPOSITORY_UNAVAILABLE, snapshot.ErrUnavailable},
		{fmt.Errorf("%w: %w", snapshot.ErrAccessDenied, snapshot.ErrUnavailable), codes.Unavailable, pb.ErrorReason_REPOSITORY_UNAVAILABLE, snapshot.ErrUnavailable},
		{snapshot.ErrConcurrentDeletion, codes.Aborted, rpcerr.NoReason, nil},
		{snapshot.ErrChecksum, codes.DataLoss, rpcerr.NoReason, nil},
		{snapshot.ErrCorruptManifest, codes.DataLoss, rpcerr.NoReason, nil},
		{rpcerr.ErrRecoveryRunning, codes.AlreadyExists, pb.ErrorReason_RECOVERY_RUNNING, rpcerr.ErrRecoveryRunning},
		{rpcerr.ErrRecoveryNotFound, codes.NotFound, pb.ErrorReason_RECOVERY_NOT_FOUND, rpcerr.ErrRecoveryNotFound},
		{rpcerr.ErrSourceAddress, codes.InvalidArgument, rpcerr.NoReason, nil},
		{rpcerr.ErrSourceUnreachable, codes.Unavailable, pb.ErrorReason_SOURCE_UNREACHABLE, rpcerr.ErrSourceUnreachable},
		{rpcerr.ErrRecoveryRefused, codes.FailedPrecondition, rpcerr.NoReason, nil},
		{rpcerr.ErrNoSpace, codes.FailedPrecondition, rpcerr.NoReason, nil},
		{seqno.ErrTooManyLeases, codes.ResourceExhausted, pb.ErrorReason_TOO_MANY_LEASES, seqno.ErrTooManyLeases},
		{seqno.ErrNotHolder, codes.PermissionDenied, rpcerr.NoReason, nil},
		{shardstore.ErrStaleTerm, codes.FailedPrecondition, rpcerr.NoReason, nil},
		// The engine contract's own.
		{engine.ErrWritesRefused, codes.FailedPrecondition, pb.ErrorReason_RECOVERY_RUNNING, rpcerr.ErrRecoveryRunning},
		{engine.ErrPinLost, codes.NotFound, pb.ErrorReason_PIN_NOT_FOUND, rpcerr.ErrPinNotFound},
		{engine.ErrHistoryMismatch, codes.FailedPrecondition, pb.ErrorReason_HISTORY_MISMATCH, rpcerr.ErrHistoryMismatch},
		{engine.ErrInvalidArgument, codes.InvalidArgument, rpcerr.NoReason, nil},
		{engine.ErrOutOfRange, codes.OutOfRange, rpcerr.NoReason, nil},
		// A shard a recovery is creating: its lookup wraps both.
		{fmt.Errorf("%w: %w", shardstore.ErrNotFound, shardstore.ErrNoCommit), codes.FailedPrecondition, pb.ErrorReason_RECOVERY_RUNNING, rpcerr.ErrRecoveryRunning},
		// A repository that timed out is unavailable, not a deadline.
		{fmt.Errorf("%w: get k: %w", snapshot.ErrUnavailable, context.DeadlineExceeded), codes.Unavailable, pb.ErrorReason_REPOSITORY_UNAVAILABLE, snapshot.ErrUnavailable},
		{context.DeadlineExceeded, codes.DeadlineExceeded, rpcerr.NoReason, nil},
	} {
		st := rpcerr.ToStatus(fmt.Errorf("x: %w", tc.err))
		if status.Code(st) != tc.code || rpcerr.Reason(st) != tc.reason {
			t.Errorf("%v: %v %v, want %v %v", tc.err, status.Code(st), rpcerr.Reason(st), tc.code, tc.reason)
		}
		if st := rpcerr.Statusf(tc.err, "said otherwise"); status.Code(st) != tc.code || rpcerr.Reason(st) != tc.reason || status.Convert(st).Message() != "said otherwise" {
			t.Errorf("Statusf(%v) = %v", tc.err, st)
		}
		back := rpcerr.FromStatus(st)
		if tc.back != nil && !errors.Is(back, tc.back) {
			t.Errorf("%v: %v does not wrap %v", tc.err, back, tc.back)
		}
	}
	if st := rpcerr.StatusOrf(errors.New("empty key"), codes.InvalidArgument, "refused"); status.Code(st) != codes.InvalidArgument || rpcerr.Reason(st) != rpcerr.NoReason {
		t.Errorf("StatusOrf of an error the table does not know: %v", st)
	}
	if st := rpcerr.ToStatus(fmt.Errorf("x: %w", seqno.ErrCompacted)); status.Convert(st).Message() != "x: "+seqno.ErrCompacted.Error()+": a file copy is needed" {
		t.Errorf("ToStatus's message: %q", status.Convert(st).Message())
	}
}
