package rpcerr_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/recoverd/recoverd/api/rpcerr"
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
