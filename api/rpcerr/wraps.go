package rpcerr

import (
	"context"
	"errors"
	"strings"

	"github.com/recoverd/recoverd/engine"
)

// wrapsKey is the key of the google.rpc.ErrorInfo metadata that names, by
// wire name, every sentinel of wireNames an error wraps: a reason stands
// for one sentinel, and an engine's error may wrap several (a shard a
// recovery is creating is ErrNotFound and ErrNoCommit) or one with no
// reason of its own (ErrInvalidName, ErrCorrupt, ...). The engine socket
// (EngineService) relies on it so that the remote engine's errors answer
// errors.Is as the engine's own do.
const wrapsKey = "wraps"

// wireNames are the sentinels named in "wraps", by stable names: the
// engine contract's errors (the seqno ones among them), the context's,
// and errors.ErrUnsupported (an engine without replication answering
// HandOff).
var wireNames = []struct {
	err  error
	name string
}{
	{engine.ErrNotFound, "engine.not_found"},
	{engine.ErrNoCommit, "engine.no_commit"},
	{engine.ErrUnavailable, "engine.unavailable"},
	{engine.ErrCorrupt, "engine.corrupt"},
	{engine.ErrClosed, "engine.closed"},
	{engine.ErrInvalidName, "engine.invalid_name"},
	{engine.ErrInvalidArgument, "engine.invalid_argument"},
	{engine.ErrOutOfRange, "engine.out_of_range"},
	{engine.ErrHistoryMismatch, "engine.history_mismatch"},
	{engine.ErrStaleTerm, "engine.stale_term"},
	{engine.ErrConflict, "engine.conflict"},
	{engine.ErrStagingExists, "engine.staging_exists"},
	{engine.ErrWritesRefused, "engine.writes_refused"},
	{engine.ErrPinLost, "engine.pin_lost"},
	{engine.ErrCompacted, "seqno.compacted"},
	{engine.ErrLeaseLost, "seqno.lease_lost"},
	{engine.ErrLeaseExists, "seqno.lease_exists"},
	{engine.ErrNotHolder, "seqno.not_holder"},
	{engine.ErrTooManyLeases, "seqno.too_many_leases"},
	{errors.ErrUnsupported, "unsupported"},
	{context.Canceled, "context.canceled"},
	{context.DeadlineExceeded, "context.deadline_exceeded"},
}

// wraps returns the wire names of the sentinels err wraps, comma-separated
// ("" for none).
func wraps(err error) string {
	var names []string
	for _, w := range wireNames {
		if errors.Is(err, w.err) {
			names = append(names, w.name)
		}
	}
	return strings.Join(names, ",")
}

// unwraps returns the sentinels a "wraps" value names; names it does not
// know (a newer peer's) are skipped.
func unwraps(v string) []error {
	var out []error
	for _, n := range strings.Split(v, ",") {
		for _, w := range wireNames {
			if w.name == n {
				out = append(out, w.err)
			}
		}
	}
	return out
}
