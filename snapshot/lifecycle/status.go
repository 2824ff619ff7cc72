package lifecycle

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

// ShardStatus is what the policy knows of one shard.
type ShardStatus struct {
	ID         shardstore.ShardID
	LatestID   string    // newest known snapshot ("": none)
	LatestTime time.Time // its start time
	Next       time.Time // next scheduled run (zero: none)
	Running    bool
	Primary    bool
	Failures   int
	LastError  string
	LastRun    time.Time
	LastResult string
	Lease      *seqno.RetentionLease
	LeaseBound string
}

// Status lists the shards the policy watches, by id.
func (p *Policy) Status() []ShardStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]ShardStatus, 0, len(p.shards))
	for id, st := range p.shards {
		s := ShardStatus{ID: id, Running: st.running, Primary: st.primary, Failures: st.failures, LastError: st.lastErr,
			LastRun: st.lastRun, LastResult: st.lastResult, Lease: st.lease, LeaseBound: st.leaseBound}
		if p.cfg.Interval > 0 {
			s.Next = st.next
		}
		if st.latest != nil {
			s.LatestID, s.LatestTime = st.latest.ID, st.latest.StartTime
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b ShardStatus) int { return strings.Compare(a.ID.String(), b.ID.String()) })
	return out
}

var (
	ageDesc = prometheus.NewDesc("recoverd_snapshot_age_seconds",
		"Age of the latest snapshot of each shard of this node (since its start), as the snapshot policy knows it.", []string{"index", "shard"}, nil)
	intervalDesc = prometheus.NewDesc("recoverd_snapshot_policy_interval_seconds",
		"The snapshot policy's interval (--snapshot-interval; 0: no scheduled snapshots).", nil, nil)
)

// Describe implements prometheus.Collector.
func (p *Policy) Describe(ch chan<- *prometheus.Desc) { ch <- ageDesc; ch <- intervalDesc }

// Collect implements prometheus.Collector: the age of each shard's latest
// snapshot, and the interval.
func (p *Policy) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(intervalDesc, prometheus.GaugeValue, p.cfg.Interval.Seconds())
	now := time.Now()
	for _, s := range p.Status() {
		if s.LatestID != "" {
			ch <- prometheus.MustNewConstMetric(ageDesc, prometheus.GaugeValue, now.Sub(s.LatestTime).Seconds(), s.ID.Index, strconv.Itoa(s.ID.Shard))
		}
	}
}

// GetSnapshotPolicy implements the SnapshotService call: the policy and,
// per shard, its latest snapshot, age, next run and lease.
func (s *Service) GetSnapshotPolicy(_ context.Context, req *pb.GetSnapshotPolicyRequest) (*pb.GetSnapshotPolicyResponse, error) {
	s.mu.Lock()
	p := s.policy
	s.mu.Unlock()
	if p == nil {
		return nil, rpcerr.Errorf(codes.FailedPrecondition, rpcerr.NoReason, "this node runs no snapshot policy (--snapshot-interval is 0, or --repo none)")
	}
	var only *shardstore.ShardID
	if req.Shard != nil {
		id, err := shardOf(req.Shard)
		if err != nil {
			return nil, err
		}
		only = &id
	}
	c := p.cfg
	resp := &pb.GetSnapshotPolicyResponse{Policy: &pb.SnapshotPolicy{Interval: durationpb.New(c.Interval), Jitter: c.Jitter, Keep: int32(c.Keep),
		MaxAge: durationpb.New(c.MaxAge), Scope: string(c.Scope), MaxUploads: int32(s.cfg.MaxUploads), LeaseMaxOps: c.LeaseMaxOps, LeaseMaxBytes: c.LeaseMaxBytes}}
	now := time.Now()
	for _, st := range p.Status() {
		if only != nil && st.ID != *only {
			continue
		}
		out := &pb.ShardSnapshotStatus{Shard: pbconv.ShardID(st.ID), LastSnapshotId: st.LatestID, Running: st.Running, Primary: st.Primary,
			Failures: int32(st.Failures), LastError: st.LastError, LastResult: st.LastResult, LeaseRetainingSeqno: int64(seqno.Unassigned), LeaseBound: st.LeaseBound}
		if st.LatestID != "" {
			out.LastSnapshotTime = pbconv.Time(st.LatestTime)
			out.Age = durationpb.New(now.Sub(st.LatestTime))
		}
		if !st.Next.IsZero() {
			out.NextRun = pbconv.Time(st.Next)
		}
		if !st.LastRun.IsZero() {
			out.LastRun = pbconv.Time(st.LastRun)
		}
		if st.Lease != nil {
			out.LeaseRetainingSeqno = int64(st.Lease.RetainingSeqNo)
		}
		resp.Shards = append(resp.Shards, out)
	}
	return resp, nil
}
