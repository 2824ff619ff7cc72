package recovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/recoverd/recoverd/internal/fsutil"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/transfer"
)

// The journal is one small file per running recovery in Config.StateDir,
// written when it starts, at each stage and when it pins the source's
// commit, removed when it ends. A node that restarts finds the files of the
// recoveries it was running, reports them as failed (interrupted), and
// removes the files: the caller triggers them again. Their staging
// directories were removed when the shards were opened. What they held on
// their sources (the retention lease, the commit pin) is released in the
// background, best effort: otherwise it would stay until it expired, the
// lease retaining ops and the pin files and one of the source's outgoing
// recovery slots.

type journalEntry struct {
	ID     string             `json:"id"`
	Shard  shardstore.ShardID `json:"shard"`
	Source string             `json:"source"`
	Stage  Stage              `json:"stage"`
	Start  time.Time          `json:"start"`
	// Pin is the commit pin held on the source, once taken.
	Pin string `json:"pin,omitempty"`
}

const journalSuffix = ".recovery"

func (m *Manager) journalPath(id string) string {
	return filepath.Join(m.cfg.StateDir, id+journalSuffix)
}

// journal records a running recovery's stage; errors are logged, not
// fatal: the journal only serves reporting after a restart.
func (m *Manager) journal(s Snapshot) {
	if m.cfg.StateDir == "" || s.DryRun {
		return
	}
	b, _ := json.Marshal(journalEntry{ID: s.ID, Shard: s.Shard, Source: s.Source, Stage: s.Stage, Start: s.Start, Pin: s.pinID})
	if err := fsutil.WriteFileAtomic(m.journalPath(s.ID), b, 0o644); err != nil {
		m.cfg.Logger.Warn("could not journal the recovery", "recovery", s.ID, "error", err)
	}
}

func (m *Manager) unjournal(id string) {
	if m.cfg.StateDir == "" {
		return
	}
	if err := os.Remove(m.journalPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		m.cfg.Logger.Warn("could not remove the recovery's journal file", "recovery", id, "error", err)
	}
}

// Open loads the journal: recoveries that were running when the node
// stopped are listed as failed. Call it once, before serving.
func (m *Manager) Open() error {
	if m.cfg.StateDir == "" {
		return nil
	}
	if err := os.MkdirAll(m.cfg.StateDir, 0o755); err != nil {
		return fmt.Errorf("recovery state dir: %w", err)
	}
	if _, err := fsutil.RemoveTemps(m.cfg.StateDir); err != nil {
		return err
	}
	entries, err := os.ReadDir(m.cfg.StateDir)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), journalSuffix) {
			continue
		}
		path := filepath.Join(m.cfg.StateDir, e.Name())
		b, err := os.ReadFile(path)
		var je journalEntry
		if err == nil {
			err = json.Unmarshal(b, &je)
		}
		if err != nil || shardstore.ValidateName(je.ID) != nil {
			m.cfg.Logger.Warn("unreadable recovery journal file removed", "file", path, "error", err)
			os.Remove(path)
			continue
		}
		r := newRecovery(Snapshot{ID: je.ID, Shard: je.Shard, Source: je.Source, Target: m.cfg.NodeID, Stage: StageFailed,
			Start: je.Start, End: now,
			Error: fmt.Sprintf("interrupted: the node stopped during stage %s; its staging was removed at restart, start the recovery again", je.Stage)})
		close(r.done)
		m.mu.Lock()
		m.all[je.ID] = r
		m.mu.Unlock()
		m.cfg.Metrics.finished.WithLabelValues("unknown", string(StageFailed)).Inc()
		m.cfg.Logger.Warn("recovery interrupted by a restart", "recovery", je.ID, "shard", je.Shard.String(), "stage", je.Stage)
		os.Remove(path)
		m.forgetLater(r, je.ID)
		if je.Source != "" && m.cfg.Dial != nil && je.Shard.Validate() == nil {
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				m.releaseOnSource(je)
			}()
		}
	}
	return nil
}

// releaseOnSource releases the lease and pin an interrupted recovery held on
// its source. Failures are logged: both expire on the source anyway.
func (m *Manager) releaseOnSource(je journalEntry) {
	ctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
	defer cancel()
	log := m.cfg.Logger.With("recovery", je.ID, "source", je.Source, "shard", je.Shard.String())
	client, err := m.cfg.Dial(ctx, je.Source)
	if err == nil {
		err = transfer.ReleaseLease(ctx, client, je.Shard, leaseID(m.cfg.NodeID, je.ID))
		if je.Pin != "" {
			err = errors.Join(err, transfer.ReleasePin(ctx, client, je.Pin))
		}
	}
	if err != nil {
		log.Info("could not release what the interrupted recovery held on its source; it expires there", "error", err)
		return
	}
	log.Info("released the lease and pin the interrupted recovery held on its source")
}
