package recovery

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/internal/fsutil"
	"github.com/recoverd/recoverd/internal/staging"
	"github.com/recoverd/recoverd/planner"
	"github.com/recoverd/recoverd/snapshot"
)

// peerFetches returns a function that starts fetching files from the
// source at once, in g, concurrently with whatever else runs there: the
// plan's own peer files, and files a hybrid plan hands over as their
// downloads fail. At most Config.Fetch.Parallel such calls run at once
// (each streams up to Parallel files); a call waits only for other peer
// calls, never for snapshot downloads.
func (a *attempt) peerFetches(ctx context.Context, g *errgroup.Group, area *staging.Area) func([]engine.FileMeta) {
	parallel := a.m.cfg.Fetch.Parallel
	if parallel <= 0 {
		parallel = 4 // transfer's default
	}
	calls := make(chan struct{}, parallel)
	return func(files []engine.FileMeta) {
		g.Go(func() error {
			select {
			case calls <- struct{}{}:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
			defer func() { <-calls }()
			return a.fetch(ctx, files, area)
		})
	}
}

// repositoryFailed reports whether a download failed because of the
// repository rather than the file: unavailable (network errors, 5xx and
// SlowDown after the retries, a store that does not answer in time),
// access refused. The next download would fail the same way.
func repositoryFailed(err error) bool {
	return errors.Is(err, snapshot.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}

// download fetches the plan's snapshot files, at most
// Config.MaxSnapshotDownloads at once on the node, and decides what a
// failed download means:
//
//   - the repository failed (repositoryFailed): every download stops, those
//     in flight are cancelled and waited for, and no other starts. A
//     snapshot plan fails (the caller falls back to its peer plan); a
//     hybrid plan hands every file not downloaded yet to the source, in one
//     batch, and the repository is not used again by this recovery. One
//     timeout of the repository costs the recovery one timeout, not one
//     per round of downloads.
//   - the file failed (checksum mismatch, blob missing): the blob is
//     marked bad (recordBadBlob); a snapshot plan fails as above; a hybrid
//     plan hands that file to the source at once (toPeer) and the other
//     downloads go on.
//   - the target's disk is full: the recovery fails; no fallback would
//     find room either.
func (a *attempt) download(ctx context.Context, p planner.Plan, manifest *snapshot.Manifest, area *staging.Area,
	toPeer func([]engine.FileMeta)) error {
	m := a.m
	hybrid := p.Kind == planner.KindHybrid
	if manifest == nil || manifest.ID != p.SnapshotID {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		var err error
		manifest, err = snapshot.Read(rctx, m.cfg.Repo, a.shard, p.SnapshotID)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return a.snapshotFailed(hybrid, &snapshotFailure{err: err}, p.FromSnapshot, toPeer)
		}
	}
	d := m.cfg.NewDownloader()
	d.OnBytes = a.r.addBytes
	if m.cfg.Throttle != nil {
		d.Throttle = func(ctx context.Context, n int) error {
			w, err := m.cfg.Throttle.WaitN(ctx, n)
			if w > 0 {
				a.throttled(w)
			}
			return err
		}
	}
	sctx, stop := context.WithCancel(ctx) // stops the snapshot side only
	defer stop()
	var (
		mu      sync.Mutex
		settled = map[string]bool{} // downloaded, or handed to the source
		failed  error               // what stopped every download
		wg      sync.WaitGroup
	)
	settle := func(name string) {
		mu.Lock()
		settled[name] = true
		mu.Unlock()
	}
	fail := func(err error) {
		mu.Lock()
		if failed == nil {
			failed = err
			stop()
		}
		mu.Unlock()
	}
	// fileFailed routes a failure that is the file's own.
	fileFailed := func(f engine.FileMeta, sf *snapshotFailure) {
		if !hybrid {
			fail(sf)
			return
		}
		a.log.Warn("snapshot download failed; fetching the file from the source", "file", f.Name, "error", sf.err)
		a.r.moveToPeer(f.Name)
		a.r.addFallback(Fallback{Time: time.Now(), Cause: sf.Error() + "; fetched from the source",
			From: planner.KindHybrid, To: planner.KindPeer})
		m.cfg.Metrics.fallbacks.WithLabelValues(fallbackCause(sf.err)).Inc()
		settle(f.Name)
		toPeer([]engine.FileMeta{f})
	}
	for _, f := range p.FromSnapshot {
		entry, ok := manifest.Lookup(f.Name)
		if !ok || !entry.FileMeta.SameAs(f) {
			fileFailed(f, &snapshotFailure{file: f.Name, err: fmt.Errorf("%w: not in snapshot %s as planned", snapshot.ErrNotFound, manifest.ID)})
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case m.downloads <- struct{}{}:
			case <-sctx.Done():
				return
			}
			m.cfg.Metrics.downloading.add(1)
			err := d.DownloadFile(sctx, m.cfg.Repo, entry, area)
			m.cfg.Metrics.downloading.add(-1)
			<-m.downloads
			switch {
			case err == nil:
				settle(f.Name)
				a.r.fileDone(f.Name)
				return
			case sctx.Err() != nil:
				return // stopped: by another download's failure or by the caller
			}
			m.cfg.Metrics.downloadErrors.Inc()
			switch {
			case fsutil.IsNoSpace(err):
				fail(fmt.Errorf("download %s from the snapshot: %w", f.Name, err))
			case repositoryFailed(err):
				fail(&snapshotFailure{file: f.Name, err: err})
			default:
				a.recordBadBlob(ctx, manifest.ID, entry, err)
				fileFailed(f, &snapshotFailure{file: f.Name, err: err})
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	var sf *snapshotFailure
	if !errors.As(failed, &sf) {
		return failed // nil, or this node's disk
	}
	var rest []engine.FileMeta
	for _, f := range p.FromSnapshot {
		if !settled[f.Name] {
			rest = append(rest, f)
		}
	}
	return a.snapshotFailed(hybrid, sf, rest, toPeer)
}

// snapshotFailed ends the snapshot side of a plan after a failure that is
// not one file's: a snapshot plan fails with it (the caller falls back as
// a whole); a hybrid plan hands rest, the files not downloaded, to the
// source in one batch, and later plans of this recovery leave the
// repository out.
func (a *attempt) snapshotFailed(hybrid bool, sf *snapshotFailure, rest []engine.FileMeta, toPeer func([]engine.FileMeta)) error {
	if !hybrid {
		return sf
	}
	a.noSnapshot = sf
	a.log.Warn("the snapshot repository failed; fetching every file not downloaded yet from the source", "files", len(rest), "cause", sf)
	for _, f := range rest {
		a.r.moveToPeer(f.Name)
	}
	a.r.addFallback(Fallback{Time: time.Now(), From: planner.KindHybrid, To: planner.KindPeer,
		Cause: fmt.Sprintf("the snapshot repository failed (%v); the %d files not downloaded yet were fetched from the source", sf, len(rest))})
	a.m.cfg.Metrics.fallbacks.WithLabelValues(fallbackCause(sf.err)).Inc()
	if len(rest) > 0 {
		toPeer(rest)
	}
	return nil
}
