package rpcerr

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/recoverd/recoverd/engine"
)

// TestWrapsCrossTheWire: every engine sentinel an error wraps, several at
// once and those without a reason of their own, survives ToStatus and
// FromStatus, so that a remote engine's errors answer errors.Is as the
// engine's own.
func TestWrapsCrossTheWire(t *testing.T) {
	both := fmt.Errorf("shard i/0 is being created: %w", errors.Join(engine.ErrNotFound, engine.ErrNoCommit))
	got := FromStatus(ToStatus(both))
	for _, s := range []error{engine.ErrNotFound, engine.ErrNoCommit} {
		if !errors.Is(got, s) {
			t.Errorf("%v does not wrap %v", got, s)
		}
	}
	if status.Code(got) != codes.FailedPrecondition {
		t.Errorf("code %v", status.Code(got))
	}
	for _, w := range wireNames {
		got := FromStatus(ToStatus(fmt.Errorf("x: %w", w.err)))
		if !errors.Is(got, w.err) {
			t.Errorf("%s: %v does not wrap it", w.name, got)
		}
		for _, o := range wireNames {
			if o.err != w.err && errors.Is(got, o.err) && !errors.Is(w.err, o.err) {
				t.Errorf("%s: %v also wraps %s", w.name, got, o.name)
			}
		}
	}
	if got := FromStatus(ToStatus(fmt.Errorf("x: %w", errors.ErrUnsupported))); status.Code(got) != codes.Unimplemented {
		t.Errorf("unsupported answered %v", status.Code(got))
	}
}
