// Package rpcerr is the one place recoverd maps errors to gRPC status and
// back, as etcd's api/v3rpc/rpctypes is for etcd: every server of recoverd
// (the peer API in transfer, RecoveryService in recovery, ShardService and
// SnapshotService in cmd/recoverd) answers with it, and every client reads
// answers with it.
//
// The table (table.go) gives every sentinel error of recoverd that a
// server may answer (engine, seqno, snapshot, planner, transfer,
// recovery, and the context's) its code and, when a client must tell it
// from other errors of that code, its ErrorReason, which travels as a
// google.rpc.ErrorInfo (domain ErrorDomain). The first row whose sentinel
// the error wraps (errors.Is) decides.
//
//   - ToStatus(err) is the answer for err: its code and reason from the
//     table (Internal when none matches), its text, and what to do where
//     the table says. A status error passes through.
//   - Statusf and StatusOrf are the same with a message of the caller's,
//     for servers that say more than the error does; StatusOrf names the
//     code of an error the table does not know (InvalidArgument for a bad
//     write, say).
//   - Errorf builds an answer that maps no error: a request that fails
//     validation, a state the server checks. NoReason is the reason of
//     those that need none.
//   - FromStatus turns a status error a client received back into a
//     *RemoteError that wraps the sentinel its reason stands for, by the
//     same table, so that errors.Is works across the wire; Reason reads
//     the reason of any status error.
//   - Every answer made from an error also names, in its ErrorInfo's
//     metadata ("wraps"), each sentinel of the engine contract (and the
//     context's, and errors.ErrUnsupported) the error wraps, and
//     FromStatus wraps them all (wraps.go): the remote engine's errors
//     answer errors.Is as the engine's own do, several sentinels and
//     those without a reason of their own included.
//
// The sentinels of transfer and recovery that the table names are defined
// here (sentinels.go), because those packages import this one; they keep
// them under their own names (transfer.ErrPinNotFound is
// rpcerr.ErrPinNotFound), with their texts.
package rpcerr

import (
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
)

// ErrorDomain is the domain of the google.rpc.ErrorInfo recoverd attaches
// to its errors.
const ErrorDomain = "recoverd.v1"

// NoReason is the ErrorReason of an answer a client need not tell from
// others of its code: no ErrorInfo is attached.
const NoReason = pb.ErrorReason_ERROR_REASON_UNSPECIFIED

// Errorf returns a gRPC status error with code and message; a reason other
// than NoReason is attached as a google.rpc.ErrorInfo so the client can
// tell it from other errors of the same code.
func Errorf(code codes.Code, reason pb.ErrorReason, format string, args ...any) error {
	return errorf(code, reason, "", fmt.Sprintf(format, args...))
}

// errorf is Errorf with the wire names of the sentinels the error wraps
// (wraps.go), attached in the ErrorInfo's metadata.
func errorf(code codes.Code, reason pb.ErrorReason, wrapped, msg string) error {
	st := status.New(code, msg)
	if reason != NoReason || wrapped != "" {
		info := &errdetails.ErrorInfo{Domain: ErrorDomain}
		if reason != NoReason {
			info.Reason = reason.String()
		}
		if wrapped != "" {
			info.Metadata = map[string]string{wrapsKey: wrapped}
		}
		if d, err := st.WithDetails(info); err == nil {
			st = d
		}
	}
	return st.Err()
}

// Reason returns the ErrorReason a status error carries, or NoReason.
func Reason(err error) pb.ErrorReason {
	st, ok := status.FromError(err)
	if !ok {
		return NoReason
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == ErrorDomain {
			if v, ok := pb.ErrorReason_value[info.Reason]; ok {
				return pb.ErrorReason(v)
			}
		}
	}
	return NoReason
}

// ToStatus maps err to a gRPC status error by the table: its code, its
// reason, and a message that is err's text followed by what to do, where
// the table says it. Status errors pass through; an error the table does
// not know is Internal.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	msg := err.Error()
	r, ok := lookup(err)
	if !ok {
		return errorf(codes.Internal, NoReason, wraps(err), msg)
	}
	if r.hint != "" {
		msg += ": " + r.hint
	}
	return errorf(r.code, r.reason, wraps(err), msg)
}

// Statusf is StatusOrf with Internal for an error the table does not know.
func Statusf(err error, format string, args ...any) error {
	return StatusOrf(err, codes.Internal, format, args...)
}

// StatusOrf returns a gRPC status error with the code and reason the table
// gives err (otherwise when it gives none) and the caller's message. err
// may be a bare sentinel, for an answer that says what it means.
func StatusOrf(err error, otherwise codes.Code, format string, args ...any) error {
	if r, ok := lookup(err); ok {
		return errorf(r.code, r.reason, wraps(err), fmt.Sprintf(format, args...))
	}
	return errorf(otherwise, NoReason, wraps(err), fmt.Sprintf(format, args...))
}

// RemoteError is a status error from a peer that also wraps the sentinel
// its reason stands for, so callers can use errors.Is(err,
// seqno.ErrLeaseLost) as well as status.Code(err).
type RemoteError struct {
	st       *status.Status
	reason   pb.ErrorReason
	sentinel error
	// also are the sentinels the peer named as wrapped (wraps.go).
	also []error
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("peer: %s: %s", e.st.Code(), e.st.Message())
}

// GRPCStatus lets status.FromError and status.Code see the original status.
func (e *RemoteError) GRPCStatus() *status.Status { return e.st }

// Unwrap returns the sentinel the error's reason stands for, if any, and
// every sentinel the peer named as wrapped.
func (e *RemoteError) Unwrap() []error {
	if e.sentinel == nil {
		return e.also
	}
	return append([]error{e.sentinel}, e.also...)
}

// Code is the status code.
func (e *RemoteError) Code() codes.Code { return e.st.Code() }

// Reason is the ErrorReason attached by the peer.
func (e *RemoteError) Reason() pb.ErrorReason { return e.reason }

// FromStatus turns a status error from a peer into a *RemoteError wrapping
// the sentinel its reason stands for in the table (seqno.ErrCompacted for
// OPS_COMPACTED, ErrPinNotFound for PIN_NOT_FOUND, engine.ErrNotFound
// for SHARD_NOT_FOUND, ...; none for a reason no sentinel has, such as
// TOO_MANY_PINS). Other errors are returned unchanged.
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
	e.sentinel = sentinelOf(e.reason)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == ErrorDomain {
			e.also = unwraps(info.Metadata[wrapsKey])
		}
	}
	return e
}
