// Package rpcerr is the one place recoverd maps errors to gRPC status
// and back.
package rpcerr

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

// ErrorDomain is the domain of the google.rpc.ErrorInfo recoverd attaches
// to its errors.
const ErrorDomain = "recoverd.v1"

var (
	// ErrPinNotFound means the source no longer holds the commit pin (it
	// expired or was released): pin again and re-plan.
	ErrPinNotFound = errors.New("transfer: commit pin not found")
	// ErrHistoryMismatch means source and target histories differ: the copies
	// must not exchange ops.
	ErrHistoryMismatch = errors.New("transfer: history UUID mismatch")
)

// Errorf returns a gRPC status error with code and message; a reason other
// than ERROR_REASON_UNSPECIFIED is attached as a google.rpc.ErrorInfo so the
// client can tell it from other errors of the same code.
func Errorf(code codes.Code, reason pb.ErrorReason, format string, args ...any) error {
	st := status.New(code, fmt.Sprintf(format, args...))
	if reason != pb.ErrorReason_ERROR_REASON_UNSPECIFIED {
		if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason.String(), Domain: ErrorDomain}); err == nil {
			st = d
		}
	}
	return st.Err()
}

// Reason returns the ErrorReason a status error carries, or
// ERROR_REASON_UNSPECIFIED.
func Reason(err error) pb.ErrorReason {
	st, ok := status.FromError(err)
	if !ok {
		return pb.ErrorReason_ERROR_REASON_UNSPECIFIED
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == ErrorDomain {
			if v, ok := pb.ErrorReason_value[info.Reason]; ok {
				return pb.ErrorReason(v)
			}
		}
	}
	return pb.ErrorReason_ERROR_REASON_UNSPECIFIED
}

// ToStatus maps an error of shardstore, seqno or this package to a gRPC
// status error with a code and, where the client must act on it, a reason.
// Status errors pass through; anything unknown is Internal.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	msg := err.Error()
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, msg)
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, msg)
	case errors.Is(err, seqno.ErrCompacted):
		return Errorf(codes.FailedPrecondition, pb.ErrorReason_OPS_COMPACTED, "%s: a file copy is needed", msg)
	case errors.Is(err, seqno.ErrLeaseLost):
		return Errorf(codes.NotFound, pb.ErrorReason_LEASE_LOST, "%s: re-plan the recovery", msg)
	case errors.Is(err, seqno.ErrLeaseExists):
		return Errorf(codes.AlreadyExists, pb.ErrorReason_LEASE_EXISTS, "%s: use another lease id or release it", msg)
	case errors.Is(err, seqno.ErrNotHolder):
		return status.Error(codes.PermissionDenied, msg+": only the holder that took it may renew or release it")
	case errors.Is(err, seqno.ErrTooManyLeases):
		return Errorf(codes.ResourceExhausted, pb.ErrorReason_TOO_MANY_LEASES, "%s: release one, or retry once one expired", msg)
	case errors.Is(err, ErrHistoryMismatch):
		return Errorf(codes.FailedPrecondition, pb.ErrorReason_HISTORY_MISMATCH, "%s", msg)
	case errors.Is(err, ErrPinNotFound):
		return Errorf(codes.NotFound, pb.ErrorReason_PIN_NOT_FOUND, "%s", msg)
	case errors.Is(err, shardstore.ErrNotFound):
		return Errorf(codes.NotFound, pb.ErrorReason_SHARD_NOT_FOUND, "%s", msg)
	case errors.Is(err, shardstore.ErrInvalidName):
		return status.Error(codes.InvalidArgument, msg)
	case errors.Is(err, shardstore.ErrClosed):
		return status.Error(codes.Unavailable, msg+": the shard is closing, retry later")
	case errors.Is(err, shardstore.ErrUnavailable):
		return status.Error(codes.Unavailable, msg+": the shard cannot be read now; it stays in place, retry later")
	case errors.Is(err, shardstore.ErrCorrupt):
		return status.Error(codes.DataLoss, msg)
	case errors.Is(err, shardstore.ErrStaleTerm):
		return status.Error(codes.FailedPrecondition, msg)
	}
	return status.Error(codes.Internal, msg)
}

// RemoteError is a status error from a peer that also wraps the sentinel
// its reason stands for, so callers can use errors.Is(err,
// seqno.ErrLeaseLost) as well as status.Code(err).
type RemoteError struct {
	st       *status.Status
	reason   pb.ErrorReason
	sentinel error
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("peer: %s: %s", e.st.Code(), e.st.Message())
}

// GRPCStatus lets status.FromError and status.Code see the original status.
func (e *RemoteError) GRPCStatus() *status.Status { return e.st }

// Unwrap returns the sentinel the error's reason stands for, if any.
func (e *RemoteError) Unwrap() error { return e.sentinel }

// Code is the status code.
func (e *RemoteError) Code() codes.Code { return e.st.Code() }

// Reason is the ErrorReason attached by the peer.
func (e *RemoteError) Reason() pb.ErrorReason { return e.reason }

// FromStatus turns a status error from a peer into a *RemoteError wrapping
// the matching sentinel (seqno.ErrCompacted, seqno.ErrLeaseLost,
// seqno.ErrLeaseExists, seqno.ErrTooManyLeases, ErrPinNotFound, ErrHistoryMismatch,
// shardstore.ErrNotFound). Other errors are returned unchanged.
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	var re *RemoteError
	if errors.As(err, &re) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	e := &RemoteError{st: st, reason: Reason(err)}
	switch e.reason {
	case pb.ErrorReason_OPS_COMPACTED:
		e.sentinel = seqno.ErrCompacted
	case pb.ErrorReason_LEASE_LOST:
		e.sentinel = seqno.ErrLeaseLost
	case pb.ErrorReason_LEASE_EXISTS:
		e.sentinel = seqno.ErrLeaseExists
	case pb.ErrorReason_TOO_MANY_LEASES:
		e.sentinel = seqno.ErrTooManyLeases
	case pb.ErrorReason_PIN_NOT_FOUND:
		e.sentinel = ErrPinNotFound
	case pb.ErrorReason_HISTORY_MISMATCH:
		e.sentinel = ErrHistoryMismatch
	case pb.ErrorReason_SHARD_NOT_FOUND:
		e.sentinel = shardstore.ErrNotFound
	}
	return e
}
