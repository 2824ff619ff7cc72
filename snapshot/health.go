package snapshot

import (
	"context"
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
)

// Is the S3 repository answering? Every request an S3Repository sends
// passes through the counting transport (requests.go), which also sets
// recoverd_s3_repository_up from its outcome, when S3Options.Metrics is
// set:
//
//   - 0: no answer (a network error, a timeout: a store that is down, hung
//     or without quorum), an answer that says the store cannot serve
//     (5xx, 429 SlowDown, 408), refused credentials (401, 403), or a
//     listing answered 404 (the bucket is gone);
//   - 1: any other answer, a 404 for a missing object included: the
//     store answered.
//
// A request its caller cancelled says nothing and changes nothing (one our
// own deadline ended counts as no answer). The
// gauge starts at 1 and keeps the outcome of the last request until the
// next one; the cleanup sweep lists the repository every
// --cleanup-interval, so it is never older than that. Requests that found
// the store unavailable are counted in
// recoverd_s3_unavailable_requests_total. A local (file://) repository
// sends no request and sets neither.

// health is the pair of metrics.
type health struct {
	up          prometheus.Gauge
	unavailable prometheus.Counter
}

func newHealth() health {
	h := health{
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "recoverd_s3_repository_up",
			Help: "1 when the last request to the S3 snapshot repository was answered, 0 when it found the store unavailable (no answer, a timeout, 5xx, SlowDown, refused credentials, a missing bucket).",
		}),
		unavailable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "recoverd_s3_unavailable_requests_total",
			Help: "Requests to the S3 snapshot repository that found it unavailable (no answer, a timeout, 5xx, SlowDown, refused credentials, a missing bucket).",
		}),
	}
	h.up.Set(1)
	return h
}

func (h health) collectors() []prometheus.Collector {
	return []prometheus.Collector{h.up, h.unavailable}
}

// observe records the outcome of one request.
func (h health) observe(req *http.Request, op RequestOp, resp *http.Response, err error) {
	if ctx := req.Context(); ctx.Err() != nil {
		cause := context.Cause(ctx)
		if !errors.Is(cause, errRequestTimeout) && !errors.Is(cause, errPartTimeout) {
			return // cancelled by its caller: nothing learned
		}
		err = cause // our own deadline: the store did not answer in time
	}
	if storeUnavailable(op, resp, err) {
		h.up.Set(0)
		h.unavailable.Inc()
		return
	}
	h.up.Set(1)
}

// storeUnavailable says whether a request's outcome means the store cannot
// serve.
func storeUnavailable(op RequestOp, resp *http.Response, err error) bool {
	if err != nil || resp == nil {
		return true
	}
	switch c := resp.StatusCode; {
	case c >= 500, c == http.StatusTooManyRequests, c == http.StatusRequestTimeout,
		c == http.StatusUnauthorized, c == http.StatusForbidden:
		return true
	case c == http.StatusNotFound:
		return op == OpList // a listing finds no bucket, never a missing key
	}
	return false
}
