package transfer

import (
	"errors"

	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/internal/retry"
)

var (
	// ErrPinNotFound means the source no longer holds the commit pin (it
	// expired or was released): pin again and re-plan. Defined in
	// api/rpcerr, whose status table names it.
	ErrPinNotFound = rpcerr.ErrPinNotFound
	// ErrHistoryMismatch means source and target histories differ: the
	// copies must not exchange ops. Defined in api/rpcerr.
	ErrHistoryMismatch = rpcerr.ErrHistoryMismatch
	// ErrChunkCorrupt marks a chunk that failed its checks (offset, length,
	// CRC32C, decompression). A few in a row at the same offset end the
	// transfer of the file. It is transient (retry.IsTransient).
	ErrChunkCorrupt = retry.Sentinel("transfer: corrupt chunk", true)
	// ErrIdle means a stream delivered nothing for longer than the idle
	// timeout; the transfer is resumed on a new stream. It is transient.
	ErrIdle = retry.Sentinel("transfer: stream idle for too long", true)
	// ErrShortStream means a stream ended before the bytes asked for. It
	// is transient.
	ErrShortStream = retry.Sentinel("transfer: stream ended early", true)
	// ErrRetriesExhausted wraps the last transient error of a transfer that
	// gave up: its retry budget is spent. It is not transient itself,
	// whatever it wraps.
	ErrRetriesExhausted = retry.Sentinel("transfer: retries exhausted", false)
	// ErrProtocol means the peer answered something the protocol forbids
	// (ops out of order or outside the range asked for).
	ErrProtocol = errors.New("transfer: protocol violation")
)
