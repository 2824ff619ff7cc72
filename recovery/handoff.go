package recovery

import (
	"context"
	"errors"
	"time"

	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/transfer"
)

// HandOff says that the recovery's lease became the copy's on the source
// (engine.Retention.HandOff): its id, and the first seqno the source's
// replication owes the copy.
type HandOff struct {
	Lease string      `json:"lease"`
	From  seqno.SeqNo `json:"from"`
}

// handOff, at the end of a recovery that succeeded, turns its lease on the
// source into the copy's lease, retaining from the copy's local checkpoint
// + 1, so that no op between the last catch-up round and replication is
// trimmed (doc.go, "Handing the copy over"). It reports whether the lease
// was handed off; when it was not (the source's engine has no
// replication, or the call failed) the caller releases it as before: the
// copy is whole either way, the hand-off only keeps history for later.
func (a *attempt) handOff(ctx context.Context, lease transfer.Lease) bool {
	ti, err := a.target.Info(ctx)
	if err != nil {
		a.log.Warn("could not read the copy's checkpoint; releasing the retention lease instead of handing it over", "error", err)
		return false
	}
	from := ti.Seq.LocalCheckpoint + 1
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var l transfer.Lease
	err = a.callSource(hctx, "hand the retention lease over to the copy", func(ctx context.Context) error {
		l, err = transfer.HandOffLease(ctx, a.client, a.shard, lease.ID, a.m.cfg.NodeID, from)
		return err
	})
	switch {
	case errors.Is(err, errors.ErrUnsupported):
		a.log.Info("the source's engine has no replication of its own; releasing the retention lease", "lease", lease.ID)
		return false
	case err != nil:
		a.log.Warn("could not hand the retention lease over to the copy; releasing it", "lease", lease.ID, "error", err)
		return false
	}
	a.r.update(func(s *State) { s.HandOff = &HandOff{Lease: l.ID, From: l.RetainingSeqNo} })
	a.log.Info("retention lease handed over to the copy's replication", "lease", lease.ID, "copy_lease", l.ID, "from", l.RetainingSeqNo,
		"expires_in", l.TTL.String())
	return true
}
