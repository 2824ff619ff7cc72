package recovery

import (
	"context"
	"errors"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/shardstore"
)

// Unary calls to the source (pin, lease, metadata, digest) ride out a
// source that is briefly unreachable, as file and op streams do, instead
// of failing the recovery on the first Unavailable.
func TestUnaryCallsToTheSourceAreRetried(t *testing.T) {
	for _, method := range []string{"PinCommit", "AcquireLease", "GetShardMetadata", "GetShardDigest"} {
		t.Run(method, func(t *testing.T) {
			m := NewMetrics(nil)
			e := newEnv(t, shardstore.Options{RetainOps: 1000}, Config{Metrics: m})
			src := e.source()
			write(t, src, 200, 0, 256)
			flush(t, src)
			write(t, src, 20, 200, 256)
			full := "/recoverd.v1.PeerService/" + method
			// A count, not a timer: under load the recovery may reach the
			// call only after a timer has already lifted the fault.
			e.faults.failNext(full, 3)
			s := e.run(StartRequest{})
			requireDone(t, s)
			if e.faults.hits.Load() == 0 {
				t.Fatal("the fault was never hit")
			}
			var c dto.Metric
			if err := m.retries.WithLabelValues("source_call").Write(&c); err != nil {
				t.Fatal(err)
			}
			if got := c.GetCounter().GetValue(); got < 1 {
				t.Fatalf("retries{cause=source_call} = %v", got)
			}
			noStaging(t, e.target())
		})
	}
}

// A source that stays down past the retry budget fails the recovery with
// the call named and the budget said to be spent.
func TestUnaryCallGivesUpAfterTheBudget(t *testing.T) {
	e := newEnv(t, shardstore.Options{}, Config{})
	src := e.source()
	write(t, src, 50, 0, 64)
	flush(t, src)
	e.faults.set("/recoverd.v1.PeerService/PinCommit", true)
	s := e.run(StartRequest{})
	if s.Stage != StageFailed {
		t.Fatalf("ended %s", s.Stage)
	}
	if want := "pin the source's commit: transfer: retries exhausted"; len(s.Error) < len(want) || s.Error[:len(want)] != want {
		t.Fatalf("error %q", s.Error)
	}
}

// A recovery of a shard the source does not hold fails saying so, and
// creates nothing on the target.
func TestShardUnknownToTheSourceCreatesNothing(t *testing.T) {
	e := newEnv(t, shardstore.Options{}, Config{})
	s := e.run(StartRequest{Shard: engine.ShardID{Index: "nope", Shard: 3}})
	if s.Stage != StageFailed || !strings.Contains(s.Error, "does not hold shard nope/3") {
		t.Fatalf("ended %s: %s", s.Stage, s.Error)
	}
	if _, err := e.tgt.Shard(context.Background(), engine.ShardID{Index: "nope", Shard: 3}); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("the target shard exists after the failed recovery: %v", err)
	}
}
