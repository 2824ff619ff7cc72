package snapshot

import (
	"context"
	"errors"
	"fmt"
)

// Sentinel errors. Every error this package returns that is about the
// repository or its content wraps one of them; compare with errors.Is.
var (
	// ErrNotFound: the key, manifest or snapshot does not exist (the
	// repository answered, and the answer is "no such thing").
	ErrNotFound = errors.New("snapshot: not found")
	// ErrUnavailable: the repository could not be read or written: network
	// errors, timeouts, 5xx and SlowDown answers, a missing bucket or root
	// directory, refused credentials. Never means "empty".
	ErrUnavailable = errors.New("snapshot: repository unavailable")
	// ErrAccessDenied: the repository refused the credentials or the
	// operation. An ErrAccessDenied error is also an ErrUnavailable error
	// (for a planner both mean "cannot use the repository"), but it is
	// permanent: it is never retried.
	ErrAccessDenied = errors.New("snapshot: repository access denied")
	// ErrCorruptManifest: a manifest exists but cannot be decoded or fails
	// validation (truncated, bad JSON, unknown version, names outside the
	// shard, blob keys outside the shard's blobs/ prefix).
	ErrCorruptManifest = errors.New("snapshot: corrupt manifest")
	// ErrChecksum: downloaded or uploaded bytes do not have the length or
	// CRC32C the manifest or commit records. The error names the file.
	ErrChecksum = errors.New("snapshot: checksum mismatch")
	// ErrConcurrentDeletion: a Create gave up because other processes kept
	// marking or deleting the blobs it uploaded (see deletion.go); nothing
	// it wrote names a missing blob. A sweep whose upload grace is shorter
	// than the snapshot's uploads does that.
	ErrConcurrentDeletion = errors.New("snapshot: blobs deleted concurrently")
)

// repoError is what repositories return: the operation, the key (never a
// credential), the kind (one of the sentinels) and whether retrying may help.
type repoError struct {
	op, repo, key string
	kinds         []error
	transient     bool
	err           error
}

func (e *repoError) Error() string {
	msg := fmt.Sprintf("%v: %s %s", e.kinds[0], e.op, e.key)
	if e.repo != "" {
		msg += " in " + e.repo
	}
	if e.err != nil {
		msg += ": " + e.err.Error()
	}
	return msg
}

func (e *repoError) Unwrap() []error {
	out := append([]error(nil), e.kinds...)
	if e.err != nil {
		out = append(out, e.err)
	}
	return out
}

func notFound(op, repo, key string, err error) error {
	return &repoError{op: op, repo: repo, key: key, kinds: []error{ErrNotFound}, err: err}
}

// unavailable marks a transient failure: retrying may help.
func unavailable(op, repo, key string, err error) error {
	return &repoError{op: op, repo: repo, key: key, kinds: []error{ErrUnavailable}, transient: true, err: err}
}

// unavailablePermanent marks a failure retrying cannot fix (a missing
// bucket or root directory, a full disk).
func unavailablePermanent(op, repo, key string, err error) error {
	return &repoError{op: op, repo: repo, key: key, kinds: []error{ErrUnavailable}, err: err}
}

func accessDenied(op, repo, key string, err error) error {
	return &repoError{op: op, repo: repo, key: key, kinds: []error{ErrAccessDenied, ErrUnavailable}, err: err}
}

// Transient says whether retrying may fix the failure (retry.IsTransient
// reads it): network errors, timeouts, 5xx and SlowDown answers, a
// connection reset or a body cut short are transient; not found, access
// denied, a missing bucket are not. Checksum and corrupt manifest errors
// are no repoError: permanent too.
func (e *repoError) Transient() bool { return e.transient }

// ctxError is returned when the caller's context ended while retrying: it
// is the context's error, with the last repository error kept visible.
type ctxError struct {
	cause, last error
}

func (e *ctxError) Error() string {
	return fmt.Sprintf("%v (last error: %v)", e.cause, e.last)
}

func (e *ctxError) Unwrap() []error { return []error{e.cause, e.last} }

// Transient is false: the caller's context ended, even when the last
// repository error was transient.
func (e *ctxError) Transient() bool { return false }

// ctxErr returns a non-nil error when the caller's context is done,
// wrapping lastErr (when set) so both the cause and the repository error
// stay visible to errors.Is.
func ctxErr(ctx context.Context, lastErr error) error {
	if ctx.Err() == nil {
		return nil
	}
	if lastErr == nil || errors.Is(lastErr, ctx.Err()) {
		return context.Cause(ctx)
	}
	return &ctxError{cause: context.Cause(ctx), last: lastErr}
}
