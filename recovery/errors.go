package recovery

import (
	"context"
	"errors"
	"fmt"

	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/snapshot"
	"github.com/recoverd/recoverd/transfer"
)

// replanError asks for a new plan: the history the plan relied on is gone.
type replanError struct {
	cause string
	err   error
}

func (e *replanError) Error() string { return "re-plan (" + e.cause + "): " + e.err.Error() }
func (e *replanError) Unwrap() error { return e.err }

// snapshotFailure is a snapshot download that failed: the plan falls back.
type snapshotFailure struct {
	file string
	err  error
}

func (e *snapshotFailure) Error() string {
	if e.file == "" {
		return "snapshot: " + e.err.Error()
	}
	return "snapshot file " + e.file + ": " + e.err.Error()
}
func (e *snapshotFailure) Unwrap() error { return e.err }

var errLeaseLost = fmt.Errorf("recovery: the retention lease on the source was lost: %w", seqno.ErrLeaseLost)

func causeOf(err error) string {
	switch {
	case errors.Is(err, seqno.ErrCompacted):
		return "ops_compacted"
	case errors.Is(err, transfer.ErrPinNotFound):
		return "pin_lost"
	case errors.Is(err, seqno.ErrLeaseLost):
		return "lease_lost"
	}
	return "other"
}

func fallbackCause(err error) string {
	switch {
	case errors.Is(err, snapshot.ErrChecksum):
		return "checksum"
	case errors.Is(err, snapshot.ErrNotFound):
		return "not_found"
	case errors.Is(err, snapshot.ErrUnavailable):
		return "unavailable"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline"
	}
	return "other"
}
