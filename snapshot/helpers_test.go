package snapshot

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/recoverd/recoverd/internal/testutil"
	"github.com/recoverd/recoverd/shardstore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var testShard = shardstore.ShardID{Index: "logs", Shard: 3}

// newShard creates a shard with segments segments of about docs*valueSize
// bytes each.
func newShard(t testing.TB, dir string, id shardstore.ShardID, segments, docs, valueSize int) *shardstore.Shard {
	t.Helper()
	s, err := shardstore.Open(dir, id, shardstore.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for range segments {
		addSegment(t, s, docs, valueSize)
	}
	return s
}

var docSeq struct {
	sync.Mutex
	n int
}

// addSegment indexes docs new documents and flushes them into one segment.
func addSegment(t testing.TB, s *shardstore.Shard, docs, valueSize int) {
	t.Helper()
	if err := addSegmentErr(s, docs, valueSize); err != nil {
		t.Fatal(err)
	}
}

// addSegmentErr is addSegment for goroutines other than the test's.
func addSegmentErr(s *shardstore.Shard, docs, valueSize int) error {
	batch := make([]shardstore.Doc, docs)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	docSeq.Lock()
	for i := range batch {
		docSeq.n++
		v := make([]byte, valueSize)
		for j := 0; j+8 <= len(v); j += 8 {
			binary.LittleEndian.PutUint64(v[j:], rng.Uint64())
		}
		batch[i] = shardstore.Doc{Key: fmt.Sprintf("doc-%09d", docSeq.n), Value: v}
	}
	docSeq.Unlock()
	if _, err := s.IndexBatch(context.Background(), batch); err != nil {
		return err
	}
	return s.Flush()
}

// newS3Repo makes a bucket on m and opens a repository under prefix "repo"
// in it with m's credentials.
func newS3Repo(t testing.TB, m *testutil.MinIO, opts S3Options) *S3Repository {
	t.Helper()
	bucket := m.MakeBucket("snap")
	return newS3RepoIn(t, m, bucket, "repo", opts)
}

func newS3RepoIn(t testing.TB, m *testutil.MinIO, bucket, prefix string, opts S3Options) *S3Repository {
	t.Helper()
	opts.Endpoint = m.Endpoint
	opts.AccessKey, opts.SecretKey = m.AccessKey, m.SecretKey
	opts.DisableTLS = true
	opts.Getenv = func(string) string { return "" }
	r, err := NewS3Repository(bucket, prefix, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func newLocalRepo(t testing.TB) *LocalRepository {
	t.Helper()
	r, err := NewLocalRepository(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// stagedNames lists the files in a staging directory.
func stagedNames(t testing.TB, st *stage) []string {
	t.Helper()
	entries, err := os.ReadDir(st.Dir())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
