package lifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/recoverd/recoverd/engine/embedded"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var testShard = shardstore.ShardID{Index: "logs", Shard: 0}

// node is one node's engine with one shard of docs ops, and its service.
type node struct {
	reg   *embedded.Registry
	eng   *embedded.Engine
	shard *shardstore.Shard
	svc   *Service
	m     *Metrics
	docs  int
}

func newNode(t *testing.T, repo snapshot.Repository, docs int) *node {
	t.Helper()
	reg := embedded.NewRegistry(filepath.Join(t.TempDir(), "data"), shardstore.Options{LeaseTTL: time.Minute}, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { reg.CloseAll() })
	s, err := reg.Create(testShard, false)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{reg: reg, eng: embedded.New(reg), shard: s, m: NewMetrics(prometheus.NewRegistry())}
	n.write(t, docs)
	n.svc = NewService(ServiceConfig{Repo: repo, Engine: n.eng, MaxUploads: 1, DeletionDelay: time.Hour, Metrics: n.m})
	return n
}

// write indexes docs new documents as the primary and flushes them.
func (n *node) write(t *testing.T, docs int) {
	t.Helper()
	batch := make([]shardstore.Doc, docs)
	for i := range batch {
		n.docs++
		batch[i] = shardstore.Doc{Key: fmt.Sprintf("doc-%07d", n.docs), Value: []byte(fmt.Sprintf("value %d", n.docs))}
	}
	if _, err := n.shard.IndexBatch(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	if err := n.shard.Flush(); err != nil {
		t.Fatal(err)
	}
}

// running runs the policy until the test ends or stop is called.
func running(t *testing.T, p *Policy) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not reached within a minute: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func list(t *testing.T, repo snapshot.Repository) []snapshot.Entry {
	t.Helper()
	entries, err := snapshot.List(context.Background(), repo, testShard)
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

func localRepo(t *testing.T) *snapshot.LocalRepository {
	t.Helper()
	r, err := snapshot.NewLocalRepository(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}
