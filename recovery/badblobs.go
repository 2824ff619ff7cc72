package recovery

import (
	"context"
	"fmt"
	"time"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/planner"
	"github.com/recoverd/recoverd/snapshot"
)

// Bad blobs (snapshot/badblobs.go): a download that fails because of the
// blob itself (a checksum mismatch, the blob gone; not the repository
// failing, not this node's disk) is counted, logged and marked in the
// repository, so that later plans, on every node, leave out the snapshots
// that reference it until a verification or a newer snapshot vouches for
// the data again, and the next snapshot uploads the file afresh. The mark
// is never a reason to delete anything.

// markTimeout bounds the write of one mark; it is written after the
// recovery's own context may have ended (a cancel stops the downloads).
const markTimeout = 30 * time.Second

// badBlobCauses are the label values of recoverd_snapshot_bad_blobs_total.
var badBlobCauses = []string{snapshot.BadChecksum, snapshot.BadMissing}

// recordBadBlob records that the download of f, a file of snapshot
// snapshotID, failed with err, when err is the blob's own fault.
func (a *attempt) recordBadBlob(ctx context.Context, snapshotID string, f snapshot.FileEntry, err error) {
	cause := snapshot.BadCause(err)
	if cause == "" || a.m.cfg.Repo == nil {
		return
	}
	a.m.cfg.Metrics.badBlobs.WithLabelValues(cause).Inc()
	b := snapshot.BadBlob{Blob: f.Blob, File: f.Name, Snapshot: snapshotID, Cause: cause, Detail: err.Error(),
		FoundBy: fmt.Sprintf("recovery %s on node %s", a.id, a.m.cfg.NodeID)}
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
	defer cancel()
	if merr := snapshot.MarkBad(mctx, a.m.cfg.Repo, a.shard, b); merr != nil {
		a.log.Error("a snapshot blob is bad, and it could not be marked: later plans may try its snapshot again",
			"blob", f.Blob, "file", f.Name, "snapshot", snapshotID, "cause", cause, "error", err, "mark_error", merr)
		return
	}
	a.log.Warn("a snapshot blob is bad: marked in the repository; plans leave out the snapshots that reference it until `recoverctl snapshot verify` reads it back whole or a newer snapshot replaces them",
		"blob", f.Blob, "file", f.Name, "snapshot", snapshotID, "cause", cause, "error", err)
}

// maxBadDetails bounds the marks read, for their details, per plan: the
// planner names the first bad blob; the others are listed by key.
const maxBadDetails = 1

// badBlobsInput lists the files of m whose blobs are marked bad (bad, from
// snapshot.BadBlobs), with what the first mark says, for the planner.
func badBlobsInput(ctx context.Context, repo snapshot.Repository, id engine.ShardID, m *snapshot.Manifest, bad snapshot.BadSet) []planner.BadBlob {
	var out []planner.BadBlob
	for i, f := range bad.Files(m) {
		b := planner.BadBlob{File: f.Name, Blob: f.Blob}
		if i < maxBadDetails {
			if mark, err := snapshot.ReadBadBlob(ctx, repo, id, f.Blob); err == nil {
				b.Why = mark.Cause
				if mark.FoundBy != "" {
					b.Why += ", found by " + mark.FoundBy
				}
				if !mark.MarkedAt.IsZero() {
					b.Why += " at " + mark.MarkedAt.UTC().Format(time.RFC3339)
				}
			}
		}
		out = append(out, b)
	}
	return out
}
