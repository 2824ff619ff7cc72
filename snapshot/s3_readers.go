package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// errTooLong is returned by an exactReader whose source has more bytes
// than announced.
var errTooLong = errors.New("reader has more bytes than the size given")

// exactReader yields exactly remaining bytes of r and fails, instead of
// delivering the last bytes, when r has more or fewer, so an upload of the
// wrong length fails instead of storing a truncated object.
type exactReader struct {
	r         io.Reader
	remaining int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.remaining <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.remaining {
		p = p[:e.remaining]
	}
	n, err := e.r.Read(p)
	e.remaining -= int64(n)
	if e.remaining == 0 {
		// Fail with the last bytes withheld: a consumer that stops reading
		// once it has size bytes (io.ReadFull into a part buffer) would
		// never see an error returned after them.
		var one [1]byte
		for {
			m, perr := e.r.Read(one[:])
			if m > 0 {
				return 0, errTooLong
			}
			if perr != nil {
				if perr != io.EOF {
					return 0, perr
				}
				return n, nil
			}
		}
	}
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

// s3Body is a GET's response body with an idle deadline: a Read that gets
// no byte within idle cancels the request, so a hung server cannot block a
// reader forever. Time between Reads (a throttled consumer) does not count.
type s3Body struct {
	r         *S3Repository
	ctx       context.Context // the caller's
	key       string
	body      io.ReadCloser
	cancel    context.CancelFunc
	timer     *time.Timer
	idle      time.Duration
	timedOut  *atomic.Bool
	remaining int64
}

func (b *s3Body) Read(p []byte) (int, error) {
	if b.remaining <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	b.timer.Reset(b.idle)
	n, err := b.body.Read(p)
	b.timer.Stop()
	b.remaining -= int64(n)
	if err == io.EOF && b.remaining > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && err != io.EOF {
		if b.timedOut.Load() {
			err = fmt.Errorf("no data for %v: %w", b.idle, err)
		}
		return n, b.r.classify(b.ctx, "read", b.key, err)
	}
	if b.remaining == 0 {
		err = io.EOF
	}
	return n, err
}

func (b *s3Body) Close() error {
	b.timer.Stop()
	b.cancel()
	return b.body.Close()
}
