package recovery

import (
	"context"
	"errors"
	"fmt"

	"github.com/recoverd/recoverd/planner"
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/transfer"
)

// check compares the recovered copy with the source, per
// Config.VerifyDigest. By default (DigestAuto) it compares what moved, as
// both nodes hashed it while it streamed (checkStreamed), and reads
// nothing of either shard again; when that cannot be made, it compares
// contents as DigestAlways does, but after a snapshot plan, whose point is
// to spare the source, it compares seqnos as DigestNever does.
func (a *attempt) check(ctx context.Context) error {
	if a.m.cfg.VerifyDigest != DigestAuto {
		return a.checkContent(ctx, a.m.cfg.VerifyDigest == DigestAlways, "")
	}
	why, err := a.checkStreamed(ctx)
	if err != nil || why == "" {
		return err
	}
	a.log.Info("the streamed check cannot be made; comparing contents", "why", why)
	snap, _ := a.r.State()
	return a.checkContent(ctx, snap.Plan == nil || snap.Plan.Kind != planner.KindSnapshot, why)
}

// checkContent compares history UUID, local checkpoint and max seqno and,
// with digests, the content digests (which read the whole shard once on
// both nodes; without them the files stand verified by their checksums
// and the ops by seqno, and nothing of the source's shard is read). The
// digests are of the content at the seqno the copy reached
// (engine.Reader.DigestAt): the source digests its pinned commit and ops
// up to that seqno while it goes on indexing, so a source that indexed
// more meanwhile is compared all the same. A source that cannot (its
// history at that seqno compacted, or an older version) is compared by
// seqnos, and a source that indexed more is said so; a difference at the
// same seqnos fails the recovery. notStreamed says why the streamed check
// could not be made, if it was tried.
func (a *attempt) checkContent(ctx context.Context, digests bool, notStreamed string) error {
	var (
		srcHistory string
		srcSeq     seqno.Stats
		srcAt      = seqno.Unassigned
		c          = &Check{}
		tgtErr     = make(chan error, 1)
		notAt      string // why the digests could not be compared at upTo
	)
	before, err := a.target.Info(ctx)
	if err != nil {
		return fmt.Errorf("read the recovered copy: %w", err)
	}
	upTo := before.Seq.MaxSeqNo
	if digests { // both nodes scan their shard at once
		go func() {
			var err error
			c.TargetDigest, _, err = a.target.DigestAt(ctx, nil, upTo)
			tgtErr <- err
		}()
	} else {
		tgtErr <- nil
	}
	err = a.callSourceWithin(ctx, "ask the source for its digest", 0, func(ctx context.Context) error {
		if digests { // a digest scans the whole shard: no deadline of ours on it
			d, err := transfer.GetShardDigest(ctx, a.client, a.shard, a.pin.ID, upTo)
			if errors.Is(err, seqno.ErrCompacted) {
				notAt, digests = err.Error(), false
			} else {
				c.SourceDigest, srcHistory, srcSeq, srcAt = d.Digest, d.HistoryUUID, d.Seq, d.UpTo
				return err
			}
		}
		info, err := transfer.GetShardInfo(ctx, a.client, a.shard)
		srcHistory, srcSeq = info.Meta.Commit.HistoryUUID, info.Seq
		return err
	})
	terr := <-tgtErr
	if digests && errors.Is(terr, seqno.ErrCompacted) { // replicated ops flushed past upTo meanwhile
		notAt, digests = terr.Error(), false
	}
	if !digests {
		c.TargetDigest, c.SourceDigest = "", ""
	} else if terr != nil {
		return fmt.Errorf("digest of the recovered copy: %w", terr)
	}
	if err != nil {
		return fmt.Errorf("ask the source for its state: %w", err)
	}
	ti, err := a.target.Info(ctx)
	if err != nil {
		return fmt.Errorf("read the recovered copy: %w", err)
	}
	tgtHistory := ti.Meta.Commit.HistoryUUID
	c.SourceHistoryUUID, c.TargetHistoryUUID = srcHistory, tgtHistory
	c.SourceCheckpoint, c.TargetCheckpoint = int64(srcSeq.LocalCheckpoint), int64(ti.Seq.LocalCheckpoint)
	atSeqno := digests && srcAt == upTo
	if atSeqno {
		c.Match = c.SourceDigest == c.TargetDigest && c.SourceHistoryUUID == c.TargetHistoryUUID
	} else {
		c.Match = c.SourceDigest == c.TargetDigest && c.SourceHistoryUUID == c.TargetHistoryUUID &&
			c.SourceCheckpoint == c.TargetCheckpoint && srcSeq.MaxSeqNo == ti.Seq.MaxSeqNo
	}
	moving := !c.Match && !atSeqno && srcSeq.MaxSeqNo > ti.Seq.MaxSeqNo && c.SourceHistoryUUID == c.TargetHistoryUUID
	switch {
	case c.Match && atSeqno:
		c.Detail = fmt.Sprintf("the copy equals the source at seqno %d: same digest and history %s; local checkpoint %d",
			upTo, tgtHistory, ti.Seq.LocalCheckpoint)
		if srcSeq.MaxSeqNo > upTo {
			c.Detail += fmt.Sprintf(" (the source indexed up to %d meanwhile; those ops reach the copy by replication)", srcSeq.MaxSeqNo)
		}
	case c.Match && digests:
		c.Detail = fmt.Sprintf("the copy equals the source: same digest, history %s, local checkpoint %d and max seqno %d",
			tgtHistory, ti.Seq.LocalCheckpoint, ti.Seq.MaxSeqNo)
	case c.Match:
		why := "verify-digest is never"
		switch {
		case notAt != "":
			why = "the source no longer holds its content at seqno " + fmt.Sprint(upTo) + ": " + notAt
		case a.m.cfg.VerifyDigest == DigestAuto:
			why = "a snapshot plan reads nothing of the source's shard, and " + notStreamed + "; verify-digest=always compares them"
		}
		c.Detail = fmt.Sprintf("history %s, local checkpoint %d and max seqno %d equal the source's; files verified by checksum (content digests not compared: %s)",
			tgtHistory, ti.Seq.LocalCheckpoint, ti.Seq.MaxSeqNo, why)
	case moving:
		c.Detail = fmt.Sprintf("the source indexed ops up to %d while the copy was checked (copy at %d); they reach it by replication", srcSeq.MaxSeqNo, ti.Seq.MaxSeqNo)
		if notAt != "" {
			c.Detail += "; content digests not compared: " + notAt
		}
	case atSeqno:
		c.Detail = fmt.Sprintf("the copy differs from the source at seqno %d: digest %.12s vs %.12s, history %s vs %s, checkpoint %d vs %d",
			upTo, c.TargetDigest, c.SourceDigest, c.TargetHistoryUUID, c.SourceHistoryUUID, c.TargetCheckpoint, c.SourceCheckpoint)
	default:
		c.Detail = fmt.Sprintf("the copy differs from the source: digest %.12s vs %.12s, history %s vs %s, checkpoint %d vs %d, max seqno %d vs %d",
			c.TargetDigest, c.SourceDigest, c.TargetHistoryUUID, c.SourceHistoryUUID, c.TargetCheckpoint, c.SourceCheckpoint, ti.Seq.MaxSeqNo, srcSeq.MaxSeqNo)
	}
	c.Method = CheckSeqNos
	if digests {
		c.Method = CheckContent
	}
	if notStreamed != "" && c.Match {
		c.Detail += " (not the streamed check: " + notStreamed + ")"
	}
	a.r.update(func(s *State) { s.Result = c })
	if !c.Match && !moving {
		return errors.New(c.Detail)
	}
	return nil
}
