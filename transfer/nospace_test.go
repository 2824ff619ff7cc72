package transfer

import (
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/internal/testutil"
	"github.com/recoverd/recoverd/shardstore"
)

// TestFullDiskFailsTheTransferAtOnce: the target's disk (a real 1 MiB
// tmpfs) fills up while files stream. ENOSPC is permanent: the fetch fails
// at the first failed write, saying "no space left on device", instead of
// resuming until the retry budget is spent and reporting "retries
// exhausted".
func TestFullDiskFailsTheTransferAtOnce(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 3000, valueSize: 1000, random: true, flushes: 2})
	e := startEnv(t, src, envOpts{})
	ctx := ctxT(t)
	pin, info, err := PinCommit(ctx, e.client, testShard, 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer ReleasePin(ctx, e.client, pin.ID)
	if info.Meta.TotalBytes() < 2<<20 {
		t.Fatalf("the source holds %d bytes; the test needs more than the disk's 1 MiB", info.Meta.TotalBytes())
	}
	tgt, err := shardstore.Open(testutil.SmallDisk(t, 1<<20), testShard, shardstore.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	st, err := startStage(tgt, "rec-full")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Abandon()
	start := time.Now()
	res, err := FetchFiles(ctx, e.client, testShard, pin, info.Meta.Files, st.Area,
		FetchOptions{Retry: retry.Options{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond, MaxElapsed: 20 * time.Second}})
	took := time.Since(start)
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("fetch onto a full disk: %v, want ENOSPC named", err)
	}
	if errors.Is(err, ErrRetriesExhausted) || retry.IsTransient(err) || res.Resumes != 0 {
		t.Fatalf("a full disk was retried (%d resumes, %v): %v", res.Resumes, took, err)
	}
	t.Logf("failed after %v: %v", took.Round(time.Millisecond), err)
}
