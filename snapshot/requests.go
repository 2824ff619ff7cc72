package snapshot

import (
	"context"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Counting S3 requests. An S3Repository sends every request through a
// counting http.RoundTripper under minio-go, so every attempt is counted,
// retries, multipart parts and requests that fail included. A request is
// counted by its type (RequestOp, from its method and query) and by what
// it was made for (RequestKind, from its context: CountRequests), in the
// recoverd_s3_requests_total metric when S3Options.Metrics is set, and in
// the RequestCounter the context carries, if any (a recovery's own).

// RequestOp is the type of an S3 request.
type RequestOp string

// The request types. Multipart uploads count as put (initiate, each part,
// complete); aborting one and multi-object deletes count as delete.
const (
	OpList   RequestOp = "list"
	OpGet    RequestOp = "get"
	OpPut    RequestOp = "put"
	OpHead   RequestOp = "head"
	OpDelete RequestOp = "delete"
)

// RequestOps are the request types, in label order.
var RequestOps = []RequestOp{OpList, OpGet, OpPut, OpHead, OpDelete}

// RequestKind says what a request was made for.
type RequestKind string

// The kinds of requests: a recovery's (planning and downloads), a
// snapshot's (create, list, delete on the SnapshotService), the cleanup
// sweep's, and any other (a context CountRequests did not tag).
const (
	KindRecovery RequestKind = "recovery"
	KindSnapshot RequestKind = "snapshot"
	KindCleanup  RequestKind = "cleanup"
	KindOther    RequestKind = "other"
)

// RequestKinds are the kinds, in label order.
var RequestKinds = []RequestKind{KindRecovery, KindSnapshot, KindCleanup, KindOther}

// RequestTally is a count of requests by type.
type RequestTally struct {
	List   int64 `json:"list,omitempty"`
	Get    int64 `json:"get,omitempty"`
	Put    int64 `json:"put,omitempty"`
	Head   int64 `json:"head,omitempty"`
	Delete int64 `json:"delete,omitempty"`
}

// Plus adds two tallies.
func (t RequestTally) Plus(o RequestTally) RequestTally {
	return RequestTally{List: t.List + o.List, Get: t.Get + o.Get, Put: t.Put + o.Put, Head: t.Head + o.Head, Delete: t.Delete + o.Delete}
}

// Total is the number of requests of every type.
func (t RequestTally) Total() int64 { return t.List + t.Get + t.Put + t.Head + t.Delete }

// RequestCounter counts requests by type. The zero value is ready; it is
// safe for concurrent use.
type RequestCounter struct {
	list, get, put, head, del atomic.Int64
}

func (c *RequestCounter) add(op RequestOp) {
	switch op {
	case OpList:
		c.list.Add(1)
	case OpGet:
		c.get.Add(1)
	case OpPut:
		c.put.Add(1)
	case OpHead:
		c.head.Add(1)
	case OpDelete:
		c.del.Add(1)
	}
}

// Tally returns the counts so far.
func (c *RequestCounter) Tally() RequestTally {
	return RequestTally{List: c.list.Load(), Get: c.get.Load(), Put: c.put.Load(), Head: c.head.Load(), Delete: c.del.Load()}
}

type requestTagKey struct{}

type requestTag struct {
	kind    RequestKind
	counter *RequestCounter
}

// CountRequests returns a context whose S3 requests are counted under kind
// and, when counter is not nil, in counter too. The innermost tag wins.
func CountRequests(ctx context.Context, kind RequestKind, counter *RequestCounter) context.Context {
	return context.WithValue(ctx, requestTagKey{}, requestTag{kind: kind, counter: counter})
}

// RequestMetrics is the recoverd_s3_requests_total counter, and
// recoverd_s3_repository_up and recoverd_s3_unavailable_requests_total
// (health.go), registered on the registry passed to NewRequestMetrics
// (never the global one). One is shared by the repositories of a process
// (S3Options.Metrics).
type RequestMetrics struct {
	total  *prometheus.CounterVec
	health health // health.go
}

// NewRequestMetrics creates the counter with every series at zero and
// registers it on reg (nil: registered nowhere).
func NewRequestMetrics(reg prometheus.Registerer) *RequestMetrics {
	m := &RequestMetrics{total: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "recoverd_s3_requests_total",
		Help: "Requests sent to the S3 snapshot repository (every attempt), by type (list, get, put, head, delete) and by what they were for (recovery, snapshot, cleanup, other).",
	}, []string{"op", "kind"}), health: newHealth()}
	for _, op := range RequestOps {
		for _, k := range RequestKinds {
			m.total.WithLabelValues(string(op), string(k))
		}
	}
	if reg != nil {
		reg.MustRegister(append(m.health.collectors(), m.total)...)
	}
	return m
}

// countingTransport counts each request, then sends it.
type countingTransport struct {
	next    http.RoundTripper
	metrics *RequestMetrics // nil: only the context's counter
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	op := requestOp(req)
	tag, _ := req.Context().Value(requestTagKey{}).(requestTag)
	if tag.kind == "" {
		tag.kind = KindOther
	}
	if t.metrics != nil {
		t.metrics.total.WithLabelValues(string(op), string(tag.kind)).Inc()
	}
	if tag.counter != nil {
		tag.counter.add(op)
	}
	resp, err := t.next.RoundTrip(req)
	if t.metrics != nil {
		t.metrics.health.observe(req, op, resp, err)
	}
	return resp, err
}

// requestOp classifies an S3 request by its method and query, whatever
// the addressing style (path or virtual host).
func requestOp(req *http.Request) RequestOp {
	q := req.URL.Query()
	switch req.Method {
	case http.MethodHead:
		return OpHead
	case http.MethodDelete:
		return OpDelete
	case http.MethodPut:
		return OpPut
	case http.MethodPost:
		if q.Has("delete") { // DeleteObjects
			return OpDelete
		}
		return OpPut // multipart initiate and complete
	}
	// GET: ListObjectsV2 and V1, ListMultipartUploads, ListObjectVersions
	// carry one of these; an object GET does not.
	for _, k := range []string{"list-type", "uploads", "versions", "prefix", "delimiter", "marker"} {
		if q.Has(k) {
			return OpList
		}
	}
	return OpGet
}
