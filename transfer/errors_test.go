package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
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
		{fmt.Errorf("x: %w", ErrHistoryMismatch), codes.FailedPrecondition, ErrHistoryMismatch},
		{fmt.Errorf("x: %w", ErrPinNotFound), codes.NotFound, ErrPinNotFound},
		{fmt.Errorf("x: %w", shardstore.ErrInvalidName), codes.InvalidArgument, nil},
		{fmt.Errorf("x: %w", shardstore.ErrClosed), codes.Unavailable, nil},
		{fmt.Errorf("x: %w", shardstore.ErrCorrupt), codes.DataLoss, nil},
		{context.Canceled, codes.Canceled, nil},
		{errors.New("disk on fire"), codes.Internal, nil},
	} {
		st := ToStatus(tc.err)
		if status.Code(st) != tc.code {
			t.Errorf("%v: code %v, want %v", tc.err, status.Code(st), tc.code)
		}
		back := FromStatus(st)
		if tc.sentinel != nil && !errors.Is(back, tc.sentinel) {
			t.Errorf("%v: %v does not wrap %v", tc.err, back, tc.sentinel)
		}
		if status.Code(back) != tc.code {
			t.Errorf("%v: round trip code %v", tc.err, status.Code(back))
		}
	}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{status.Error(codes.Unavailable, "x"), true},
		{status.Error(codes.DeadlineExceeded, "x"), true},
		{status.Error(codes.ResourceExhausted, "x"), true},
		{status.Error(codes.ResourceExhausted, "grpc: received message larger than max (16996654 vs. 16777216)"), false},
		{FromStatus(status.Error(codes.ResourceExhausted, "grpc: trying to send message larger than max (16996654 vs. 16777216)")), false},
		{status.Error(codes.Internal, "stream terminated by RST_STREAM with error code: INTERNAL_ERROR"), true},
		{status.Error(codes.Internal, "bug"), false},
		{status.Error(codes.NotFound, "x"), false},
		{status.Error(codes.InvalidArgument, "x"), false},
		{status.Error(codes.FailedPrecondition, "x"), false},
		{status.Error(codes.Canceled, "x"), false},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{fmt.Errorf("x: %w", ErrIdle), true},
		{fmt.Errorf("x: %w: %w", ErrRetriesExhausted, ErrIdle), false},
		{fmt.Errorf("x: %w", shardstore.ErrCorrupt), false},
		{fmt.Errorf("transfer: write f: %w", &fs.PathError{Op: "write", Path: "f", Err: syscall.ENOSPC}), false},
		{fmt.Errorf("append: %w", syscall.EDQUOT), false},
		{&fs.PathError{Op: "write", Path: "f", Err: syscall.EIO}, false},
		{nil, false},
	} {
		if got := retry.IsTransient(tc.err); got != tc.want {
			t.Errorf("IsTransient(%v) = %v", tc.err, got)
		}
	}
}
