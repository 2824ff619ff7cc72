package recovery

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/transfer"
)

// A recovery id that makes a lease or holder name longer than a source
// accepts is refused at Start with InvalidArgument, before anything runs;
// the longest id that fits runs to the end on a real source.
func TestRecoveryIDTooLongForTheSourceIsRefusedAtStart(t *testing.T) {
	e := newEnv(t, shardstore.Options{}, Config{})
	src := e.source()
	write(t, src, 50, 0, 64)
	flush(t, src)
	limit := maxIDLen("target")
	tooLong := strings.Repeat("r", limit+1)
	if _, err := e.m.Start(StartRequest{Shard: shardID, Source: e.addr, ID: tooLong}); !errors.Is(err, engine.ErrInvalidName) {
		t.Fatalf("Start with a %d-byte id: %v, want ErrInvalidName", len(tooLong), err)
	}
	svc := NewService(e.m)
	_, err := svc.StartRecovery(context.Background(), &pb.StartRecoveryRequest{Shard: pbconv.ShardID(shardID), SourceAddress: e.addr, RecoveryId: tooLong})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("StartRecovery with a %d-byte id: %v, want InvalidArgument naming the bound", len(tooLong), err)
	}
	if len(e.m.List()) != 0 {
		t.Fatal("a refused recovery was registered")
	}
	s := e.run(StartRequest{ID: strings.Repeat("r", limit)})
	requireDone(t, s)
}

// Two target nodes that recover the same shard from one source under the
// same recovery id hold one lease each: neither renews nor releases the
// other's.
func TestTwoTargetsWithOneRecoveryIDHoldTheirOwnLeases(t *testing.T) {
	e := newEnv(t, shardstore.Options{}, Config{Throttle: transfer.NewThrottle(256 << 10)})
	src := e.source()
	write(t, src, 600, 0, 1024)
	flush(t, src)
	cfg := e.m.cfg
	cfg.NodeID, cfg.Engine = "other", newDirShards(t, shardstore.Options{})
	cfg.Throttle = transfer.NewThrottle(256 << 10)
	m2 := NewManager(cfg)
	defer m2.Close()
	req := StartRequest{Shard: shardID, Source: e.addr, ID: "same-id"}
	r1, err := e.m.Start(req)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := m2.Start(req)
	if err != nil {
		t.Fatal(err)
	}
	// The lease is taken before files move; both are throttled to seconds.
	for _, r := range []*Recovery{r1, r2} {
		for {
			s, changed := r.State()
			if s.Stage == StageFiles {
				break
			}
			if s.Stage.Finished() {
				t.Fatalf("recovery ended %s before both ran: %s", s.Stage, s.Error)
			}
			<-changed
		}
	}
	var ids []string
	for _, l := range src.Leases().List() {
		ids = append(ids, l.ID)
	}
	if len(ids) != 2 || !strings.Contains(strings.Join(ids, " "), "target") || !strings.Contains(strings.Join(ids, " "), "other") {
		t.Fatalf("source leases %v while both recoveries copy files, want one per target node, named after it", ids)
	}
	for _, r := range []*Recovery{r1, r2} {
		select {
		case <-r.Done():
		case <-time.After(time.Minute):
			t.Fatal("recovery did not finish in a minute")
		}
		s, _ := r.State()
		requireDone(t, s)
		if s.Replans != 0 {
			t.Fatalf("recovery re-planned %d times (a lease lost to the other target?)", s.Replans)
		}
	}
}
