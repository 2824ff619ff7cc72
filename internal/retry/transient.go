package retry

import (
	"errors"
	"io"
	"io/fs"
	"net"
	"strings"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/recoverd/recoverd/internal/fsutil"
)

// IsTransient reports whether an operation that failed with err may
// succeed when tried again. It is the one classification every retry
// loop uses:
//
//   - an error in the chain that says so itself (a Transient() bool
//     method; the first one found decides): snapshot's repository errors
//     (network errors, timeouts, 5xx and SlowDown answers are transient;
//     not found, access denied, a missing bucket are not), transfer's
//     idle, short and corrupt streams (transient), a spent budget and the
//     context ending while retrying (not transient);
//   - anything local is permanent: a full disk or quota (fsutil.IsNoSpace)
//     and any other file error (fs.PathError) are not fixed by asking
//     again;
//   - gRPC statuses: Unavailable, DeadlineExceeded, Aborted and
//     ResourceExhausted (but not a message over the size bound, as large
//     when asked again) are transient, and so is an Internal error that
//     comes from the transport (RST_STREAM, a connection reset); NotFound,
//     InvalidArgument, FailedPrecondition, OutOfRange, Canceled and the
//     rest are not;
//   - connection resets and refusals, broken pipes, unexpected EOFs and
//     network errors (net.Error) are transient.
//
// Everything else is permanent.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	var says interface{ Transient() bool }
	if errors.As(err, &says) {
		return says.Transient()
	}
	if fsutil.IsNoSpace(err) {
		return false
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return false // a local file: syscall.Errno would pass for a net.Error below
	}
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted:
			return true
		case codes.ResourceExhausted:
			// A message over the size bound (either side's) is as large
			// when asked for again: retrying only moves it again.
			return !strings.Contains(st.Message(), "message larger than max")
		case codes.Internal:
			m := strings.ToLower(st.Message())
			return strings.Contains(m, "rst_stream") || strings.Contains(m, "connection reset") ||
				strings.Contains(m, "transport") || strings.Contains(m, "unexpected eof")
		}
		return false
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// Sentinel returns a sentinel error (compare it with errors.Is) that
// IsTransient classifies as transient or not wherever it is wrapped.
func Sentinel(msg string, transient bool) error {
	return &sentinel{msg: msg, transient: transient}
}

type sentinel struct {
	msg       string
	transient bool
}

func (e *sentinel) Error() string   { return e.msg }
func (e *sentinel) Transient() bool { return e.transient }
