package recovery

import (
	"context"
	"fmt"
	"time"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/transfer"
)

// nodeSlot is a recovery's hold on one of the node's Config.MaxConcurrent
// slots. A recovery without one is queued: in the queued stage and counted
// in recoverd_recoveries_queued. It gives its slot back while it waits for
// something that is not this node's to give (a source at its limit of
// outgoing recoveries), so that the wait never blocks recoveries from
// other sources.
type nodeSlot struct {
	m            *Manager
	r            *Recovery
	held, queued bool
}

// acquire waits, queued, until the recovery holds a slot.
func (s *nodeSlot) acquire(ctx context.Context) error {
	s.enqueue()
	mt := s.m.cfg.Metrics
	defer func() {
		s.queued = false
		mt.queued.Dec()
	}()
	select {
	case s.m.slots <- struct{}{}:
		s.held = true
		mt.running.add(1)
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// enqueue gives the slot back, if held, and puts the recovery in the
// queued stage.
func (s *nodeSlot) enqueue() {
	s.release()
	if s.queued {
		return
	}
	s.queued = true
	s.m.cfg.Metrics.queued.Inc()
	if st, _ := s.r.State(); st.Stage != StageQueued {
		s.r.setStage(StageQueued)
	}
}

// release gives the slot back, if held.
func (s *nodeSlot) release() {
	if !s.held {
		return
	}
	s.held = false
	// Counted out before the slot is given back, as it is counted in
	// after it is taken: the gauge and its peak never show more running
	// than the slots allow.
	s.m.cfg.Metrics.running.add(-1)
	<-s.m.slots
}

// pinSource pins the source's commit. While the source is at its limit of
// outgoing recoveries (too many pins) the recovery waits for it, queued,
// without holding one of this node's slots, and asks again with backoff
// (200ms up to 5s) once it holds a slot again; once it has waited
// Config.PinWait for the source it fails, naming the limit. Only the time
// spent on the source counts (asking, being refused, backing off), not the
// time queued for this node's own slot behind other recoveries: after a
// rack loss that queue is long, and counting it would fail recoveries that
// the source never kept waiting that long.
func (a *attempt) pinSource(ctx context.Context) (transfer.Pin, transfer.ShardInfo, error) {
	wait := 200 * time.Millisecond
	var waited time.Duration // on the source, since its first refusal
	refused := false
	for {
		asked := time.Now()
		var (
			pin  transfer.Pin
			info transfer.ShardInfo
			perr error
		)
		// The pin's id is journaled before it is asked for: a restart
		// releases it even if the node died before the answer came.
		id := a.r.nextPin(a.m.cfg.NodeID)
		if s, _ := a.r.State(); a.r.onStage != nil {
			a.r.onStage(s)
		}
		err := a.callSource(ctx, "pin the source's commit", func(ctx context.Context) error {
			pin, info, perr = transfer.PinCommitAs(ctx, a.client, a.shard, a.m.cfg.PinTTL, holderName(a.m.cfg.NodeID, a.id), id)
			if rpcerr.Reason(perr) == pb.ErrorReason_TOO_MANY_PINS {
				return nil // not a failure: wait below for a slot
			}
			return perr
		})
		if err != nil {
			return pin, info, fmt.Errorf("pin the source's commit: %w", err)
		}
		if perr == nil {
			return pin, info, nil
		}
		if refused {
			waited += time.Since(asked)
		}
		refused = true
		if waited >= a.m.cfg.PinWait {
			return pin, info, fmt.Errorf("the source stayed at its limit of outgoing recoveries (its --max-outgoing) for %v, this node's --pin-wait: %w",
				waited.Round(time.Millisecond), perr)
		}
		a.log.Info("the source is at its limit of outgoing recoveries; waiting, queued", "retry_in", wait, "waited", waited.Round(time.Millisecond))
		slot := a.r.slot
		if slot != nil {
			slot.enqueue()
		}
		backoff := time.Now()
		select {
		case <-time.After(min(wait, a.m.cfg.PinWait-waited)):
		case <-ctx.Done():
			return transfer.Pin{}, transfer.ShardInfo{}, context.Cause(ctx)
		}
		waited += time.Since(backoff)
		if slot != nil {
			if err := slot.acquire(ctx); err != nil {
				return transfer.Pin{}, transfer.ShardInfo{}, err
			}
			a.r.setStage(StagePlan)
		}
		wait = min(2*wait, 5*time.Second)
	}
}
