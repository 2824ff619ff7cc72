package snapshot

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/recoverd/recoverd/internal/testutil"
	"github.com/recoverd/recoverd/shardstore"
)

// Benchmarks against a real MinIO on loopback. Sizes come from the
// environment so the defaults finish in minutes on a small machine:
//
//	RECOVERD_BENCH_SHARD_MB   shard size for the Create benchmarks (256)
//	RECOVERD_BENCH_BIG_MB     the "1 GiB" file of BenchmarkDownload1GiB (1024)
//	RECOVERD_BENCH_MANY       file count of BenchmarkDownload64x32MiB (64)
//	RECOVERD_BENCH_MANY_MB    size of each of those files (32)
//	RECOVERD_BENCH_UPLOADS    Create upload concurrency (4)
//
// The download benchmarks also time `rclone copy` of the same objects
// (when rclone is on PATH: apt-get install rclone) and report its MB/s and
// our speed as a multiple of it. Run with e.g.
//
//	go test -run '^$' -bench . -benchtime 2x ./snapshot/

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// syntheticFile streams size pseudo-random bytes ending with the CRC32C
// footer of a shard file; CRC is valid once the reader is drained.
type syntheticFile struct {
	rng  *rand.ChaCha8
	crc  hash.Hash32
	left int64 // body bytes left
	foot []byte
	CRC  uint32
}

func newSyntheticFile(size int64, seed uint64) *syntheticFile {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return &syntheticFile{rng: rand.NewChaCha8(s), crc: crc32.New(castagnoli), left: size - 4}
}

func (f *syntheticFile) Read(p []byte) (int, error) {
	if f.left > 0 {
		n := int(min(int64(len(p)), f.left))
		f.rng.Read(p[:n])
		f.crc.Write(p[:n])
		f.left -= int64(n)
		if f.left == 0 {
			f.CRC = f.crc.Sum32()
			f.foot = binary.LittleEndian.AppendUint32(nil, f.CRC)
		}
		return n, nil
	}
	if len(f.foot) == 0 {
		return 0, io.EOF
	}
	n := copy(p, f.foot)
	f.foot = f.foot[n:]
	return n, nil
}

// putSynthetic uploads files of the given size under BlobPrefix(testShard)
// + name and returns their entries.
func putSynthetic(b *testing.B, repo Repository, names []string, size int64) []FileEntry {
	b.Helper()
	out := make([]FileEntry, len(names))
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(4)
	for i, name := range names {
		g.Go(func() error {
			f := newSyntheticFile(size, uint64(i+1))
			key := BlobPrefix(testShard) + name
			if err := repo.Put(ctx, key, f, size); err != nil {
				return err
			}
			out[i] = FileEntry{FileMeta: shardstore.FileMeta{Name: name, Length: size, CRC32C: f.CRC}, Blob: key}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	return out
}

// rclone runs `rclone copy` of src (a path in m's bucket) into a temp
// directory, like-for-like with a Download of the same objects.
type rclone struct {
	bin  string
	env  []string
	m    *testutil.MinIO
	took time.Duration
	runs int
}

// newRclone returns nil when rclone is not on PATH.
func newRclone(b *testing.B, m *testutil.MinIO) *rclone {
	b.Helper()
	bin, err := exec.LookPath("rclone")
	if err != nil {
		b.Logf("rclone not on PATH (apt-get install rclone): no comparison")
		return nil
	}
	conf := filepath.Join(b.TempDir(), "rclone.conf")
	if err := os.WriteFile(conf, nil, 0o600); err != nil {
		b.Fatal(err)
	}
	// Only our configuration: no AWS_* (an AWS_CA_BUNDLE breaks plain
	// HTTP in rclone's SDK), no proxy.
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "AWS_") && !strings.HasPrefix(k, "RCLONE_") && !strings.HasSuffix(strings.ToUpper(k), "_PROXY") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"RCLONE_CONFIG="+conf,
		"RCLONE_CONFIG_BENCH_TYPE=s3",
		"RCLONE_CONFIG_BENCH_PROVIDER=Minio",
		"RCLONE_CONFIG_BENCH_ENDPOINT="+m.URL(),
		"RCLONE_CONFIG_BENCH_REGION=us-east-1",
		"RCLONE_CONFIG_BENCH_ACCESS_KEY_ID="+m.AccessKey,
		"RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY="+m.SecretKey,
	)
	return &rclone{bin: bin, env: env, m: m}
}

// copy times one `rclone copy` (default flags) and checks the byte count.
func (r *rclone) copy(b *testing.B, src string, bytes int64) {
	b.Helper()
	dst := b.TempDir()
	cmd := exec.Command(r.bin, "copy", "bench:"+src, dst)
	cmd.Env = r.env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	r.took += time.Since(start)
	r.runs++
	if err != nil {
		b.Fatalf("rclone copy: %v\n%s", err, out)
	}
	var got int64
	filepath.Walk(dst, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			got += info.Size()
		}
		return nil
	})
	if got != bytes {
		b.Fatalf("rclone copied %d bytes, %d expected", got, bytes)
	}
	os.RemoveAll(dst)
}

func benchDownload(b *testing.B, count int, size int64) {
	m := testutil.StartMinIO(b)
	bucket := m.MakeBucket("bench")
	repo := newS3RepoIn(b, m, bucket, "repo", S3Options{})
	names := make([]string, count)
	for i := range names {
		names[i] = fmt.Sprintf("seg_%04d", i)
	}
	files := putSynthetic(b, repo, names, size)
	total := int64(count) * size
	tgt := newShard(b, b.TempDir(), testShard, 0, 0, 0)
	src := bucket + "/repo/" + files[0].Blob
	if count > 1 {
		src = bucket + "/repo/" + BlobPrefix(testShard)
	}

	b.Run("recoverd", func(b *testing.B) {
		d := &Downloader{}
		rc := newRclone(b, m)
		b.SetBytes(total)
		b.ResetTimer()
		for i := range b.N {
			b.StopTimer()
			st, err := startStage(tgt, "bench-"+strconv.Itoa(i))
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if err := d.Download(context.Background(), repo, files, st.Area); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := st.Abandon(); err != nil {
				b.Fatal(err)
			}
			// rclone right after, under the same conditions, untimed.
			if rc != nil {
				rc.copy(b, src, total)
			}
			b.StartTimer()
		}
		b.StopTimer()
		if rc != nil {
			ours := float64(total) * float64(b.N) / 1e6 / b.Elapsed().Seconds()
			theirs := float64(total) * float64(rc.runs) / 1e6 / rc.took.Seconds()
			b.ReportMetric(theirs, "rclone-MB/s")
			b.ReportMetric(ours/theirs, "x-rclone")
		}
	})
}

// BenchmarkDownload1GiB downloads one large file (parallel ranged GETs)
// into a staging directory, verified and fsynced.
func BenchmarkDownload1GiB(b *testing.B) {
	benchDownload(b, 1, int64(envInt("RECOVERD_BENCH_BIG_MB", 1024))<<20)
}

// BenchmarkDownload64x32MiB downloads many files concurrently.
func BenchmarkDownload64x32MiB(b *testing.B) {
	benchDownload(b, envInt("RECOVERD_BENCH_MANY", 64), int64(envInt("RECOVERD_BENCH_MANY_MB", 32))<<20)
}

// benchShard builds a shard of about mb MiB in 100 segments.
func benchShard(b *testing.B, mb int) *shardstore.Shard {
	b.Helper()
	const segments = 100
	valueSize := 64 << 10
	docs := max(1, (mb<<20)/segments/valueSize)
	return newShard(b, b.TempDir(), testShard, segments, docs, valueSize)
}

// BenchmarkCreateCold snapshots a whole shard into an empty repository.
func BenchmarkCreateCold(b *testing.B) {
	m := testutil.StartMinIO(b)
	bucket := m.MakeBucket("bench")
	s := benchShard(b, envInt("RECOVERD_BENCH_SHARD_MB", 256))
	total := s.Metadata().TotalBytes()
	b.Run("recoverd", func(b *testing.B) {
		b.SetBytes(total)
		for i := range b.N {
			repo := newS3RepoIn(b, m, bucket, fmt.Sprintf("cold-%d-%d", b.N, i), S3Options{})
			res, err := Create(context.Background(), repo, StoreSource(s), CreateOptions{Concurrency: envInt("RECOVERD_BENCH_UPLOADS", 4)})
			if err != nil {
				b.Fatal(err)
			}
			if res.UploadedBytes != total {
				b.Fatalf("uploaded %d of %d", res.UploadedBytes, total)
			}
		}
	})
}

// BenchmarkCreateIncremental snapshots a shard whose previous snapshot
// holds all but one of its 101 files (about 1% new bytes).
func BenchmarkCreateIncremental(b *testing.B) {
	m := testutil.StartMinIO(b)
	bucket := m.MakeBucket("bench")
	mb := envInt("RECOVERD_BENCH_SHARD_MB", 256)
	s := benchShard(b, mb)
	segDocs := max(1, (mb<<20)/100/(64<<10))
	b.Run("recoverd", func(b *testing.B) {
		repo := newS3RepoIn(b, m, bucket, fmt.Sprintf("incr-%d", b.N), S3Options{})
		if _, err := Create(context.Background(), repo, StoreSource(s), CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		var uploaded, logical int64
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			addSegment(b, s, segDocs, 64<<10)
			b.StartTimer()
			res, err := Create(context.Background(), repo, StoreSource(s), CreateOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if res.UploadedFiles != 1 {
				b.Fatalf("incremental snapshot uploaded %d files", res.UploadedFiles)
			}
			uploaded += res.UploadedBytes
			logical += res.UploadedBytes + res.ReusedBytes
		}
		b.StopTimer()
		b.SetBytes(logical / int64(b.N))
		b.ReportMetric(float64(uploaded)/float64(b.N)/1e6, "MB-uploaded/op")
	})
}
