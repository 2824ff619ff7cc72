package retry_test

import (
	"fmt"
	"io"
	"io/fs"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/transfer"
)

func TestIsTransient(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{status.Error(codes.Unavailable, "x"), true},
		{status.Error(codes.DeadlineExceeded, "x"), true},
		{status.Error(codes.ResourceExhausted, "x"), true},
		{status.Error(codes.ResourceExhausted, "grpc: received message larger than max (16996654 vs. 16777216)"), false},
		{rpcerr.FromStatus(status.Error(codes.ResourceExhausted, "grpc: trying to send message larger than max (16996654 vs. 16777216)")), false},
		{status.Error(codes.Internal, "stream terminated by RST_STREAM with error code: INTERNAL_ERROR"), true},
		{status.Error(codes.Internal, "bug"), false},
		{status.Error(codes.NotFound, "x"), false},
		{status.Error(codes.InvalidArgument, "x"), false},
		{status.Error(codes.FailedPrecondition, "x"), false},
		{status.Error(codes.Canceled, "x"), false},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{fmt.Errorf("x: %w", transfer.ErrIdle), true},
		{fmt.Errorf("x: %w: %w", transfer.ErrRetriesExhausted, transfer.ErrIdle), false},
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
