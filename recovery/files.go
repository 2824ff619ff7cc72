package recovery

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/internal/staging"
	"github.com/recoverd/recoverd/planner"
	"github.com/recoverd/recoverd/snapshot"
	"github.com/recoverd/recoverd/transfer"
)

// fetchVerifyPublish runs the files, verify and finalize stages of a
// file-based plan: it fetches the peer's files, downloads the snapshot's
// and stages the ops, checks that every file is staged, and publishes.
// Until Publish the target is untouched; on an error every transfer has
// returned and the staging stays, for a re-plan.
func (a *attempt) fetchVerifyPublish(ctx context.Context, p planner.Plan, manifest *snapshot.Manifest) error {
	a.r.setStage(StageFiles)
	area, err := a.prepareStaging(ctx, p)
	if err != nil {
		return err
	}
	// On an error the staging stays for a re-plan; runAttempts removes it
	// when the recovery ends, runPlan before a fallback.
	g, gctx := errgroup.WithContext(ctx)
	toPeer := a.peerFetches(gctx, g, area)
	if len(p.FromPeer) > 0 {
		toPeer(p.FromPeer)
	}
	if len(p.FromSnapshot) > 0 {
		g.Go(func() error { return a.download(gctx, p, manifest, area, toPeer) })
	}
	if !p.Ops.Empty() {
		g.Go(func() error { return a.stageOps(gctx, p) })
	}
	// The first error is the cause (a snapshot failure, the source's, the
	// ops'), never the cancellation it caused on the other sides.
	if err := g.Wait(); err != nil {
		return err
	}

	a.r.setStage(StageVerify)
	staged := map[string]bool{}
	for _, f := range area.Files() {
		staged[f.Name] = true
	}
	for _, f := range append(append([]engine.FileMeta(nil), p.FromPeer...), p.FromSnapshot...) {
		if !staged[f.Name] {
			return fmt.Errorf("file %s was not staged", f.Name)
		}
	}

	a.r.setStage(StageFinalize)
	all := make([]engine.FileMeta, 0, len(p.Reused)+len(p.FromSnapshot)+len(p.FromPeer))
	all = append(append(append(all, p.Reused...), p.FromSnapshot...), p.FromPeer...)
	commit := p.Commit
	commit.PrimaryTerm = max(commit.PrimaryTerm, a.sourceTerm)
	// The staged files are durable before the commit that names them:
	// each is fsynced here, its error checked (the engine publishes what
	// recoverd wrote, verified and fsynced).
	if err := area.Sync(all); err != nil {
		return fmt.Errorf("publish the recovered files: %w", err)
	}
	if err := a.st.Publish(ctx, all, commit); err != nil {
		return fmt.Errorf("publish the recovered files: %w", err)
	}
	area.Close()
	a.st, a.area = nil, nil // published: the staging directory is gone
	s, _ := a.r.State()
	mt := a.m.cfg.Metrics
	mt.bytes.WithLabelValues("peer").Add(float64(s.Totals.FromPeer.Bytes))
	mt.bytes.WithLabelValues("snapshot").Add(float64(s.Totals.FromSnapshot.Bytes))
	mt.bytes.WithLabelValues("reused").Add(float64(s.Totals.Reused.Bytes))
	mt.opsReplayed.Add(float64(a.stagedOps))
	return nil
}

// fetch copies files from the source into staging.
func (a *attempt) fetch(ctx context.Context, files []engine.FileMeta, area *staging.Area) error {
	opts := a.m.cfg.Fetch
	opts.Throttle = a.m.cfg.Throttle
	opts.OnBytes = a.r.addBytes
	opts.OnFileDone = func(f engine.FileMeta) { a.r.fileDone(f.Name) }
	opts.OnResume = func(file string, off int64, cause error) {
		a.r.addResume()
		a.m.cfg.Metrics.retries.WithLabelValues("peer_stream").Inc()
		a.log.Info("resuming file transfer", "file", file, "offset", off, "cause", cause)
	}
	opts.OnThrottle = a.throttled
	opts.PinKept = true // holdPin keeps it for the whole attempt
	res, err := transfer.FetchFiles(ctx, a.client, a.shard, a.pin, files, area, opts)
	if err != nil {
		return fmt.Errorf("copy files from the source: %w", err)
	}
	a.moved.files(files, res)
	return nil
}

func (a *attempt) throttled(d time.Duration) {
	a.r.addThrottle(d)
	a.m.cfg.Metrics.throttleWait.Add(d.Seconds())
}
