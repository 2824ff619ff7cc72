package recovery

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/planner"
	"github.com/recoverd/recoverd/transfer"
)

// ErrRefused is wrapped by Precheck's answer when the planner refuses the
// recovery (rpcerr.ErrRecoveryRefused: FailedPrecondition).
var ErrRefused = rpcerr.ErrRecoveryRefused

// precheckTimeout bounds the one call Precheck makes to the source.
const precheckTimeout = 5 * time.Second

// Precheck plans the recovery req would start, on what the source and the
// target hold now, and returns the planner's refusal (wrapping ErrRefused)
// if it refuses, so that StartRecovery answers it at once instead of
// accepting a recovery that fails once it is planned: a target ahead of
// its source without AllowDataLoss, versions the target cannot read, a
// source that lost the ops above its own commit. The repository is not
// asked: no snapshot can lift a refusal. Precheck changes nothing on
// either node and pins nothing. A source it cannot reach, a shard the
// source does not hold, a shard already being recovered here or a dry run
// give no answer (nil): the recovery reports them itself. The plan the
// recovery then runs is computed again, and refused again if need be.
func (m *Manager) Precheck(ctx context.Context, req StartRequest) error {
	if req.DryRun || req.Source == "" || req.Shard.Validate() != nil {
		return nil
	}
	m.mu.Lock()
	_, running := m.active[req.Shard]
	m.mu.Unlock()
	if running {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, precheckTimeout)
	defer cancel()
	client, err := m.cfg.Dial(ctx, req.Source)
	if err != nil {
		return nil
	}
	info, err := transfer.GetShardInfo(ctx, client, req.Shard)
	if err != nil {
		return nil
	}
	a := &attempt{m: m, shard: req.Shard, allowDataLoss: req.AllowDataLoss, log: m.cfg.Logger}
	if sh, err := m.cfg.Engine.Shard(ctx, req.Shard); err == nil {
		a.view = sh
	}
	in, _, err := a.input(ctx, info, false, "")
	if err != nil {
		return nil
	}
	p := planner.Compute(in)
	if !p.Refused() {
		return nil
	}
	var why []string
	for _, r := range p.Reasons {
		if rest, ok := strings.CutPrefix(r, "refused: "); ok {
			why = append(why, rest)
		}
	}
	if len(why) == 0 {
		why = p.Reasons
	}
	return fmt.Errorf("%w: %s", ErrRefused, strings.Join(why, "; "))
}
