package recovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/internal/fsutil"
	"github.com/recoverd/recoverd/planner"
	"github.com/recoverd/recoverd/transfer"
)

// The journal is one small file per recovery in Config.StateDir,
// <id>.recovery, holding the recovery's state. It is written when the
// recovery is started, at each stage, before each commit pin is asked of
// the source (naming the pin: its id is chosen here, so that a pin whose
// answer never came can still be released), when the node stops it
// (pause) and when it ends; it is removed KeepFinished after the end.
//
// A node that starts reads it back (Open):
//   - A recovery that was running (the node crashed or stopped) resumes by
//     itself under the same id: it queues again, counts a restart, releases
//     the pin it had asked for, and plans anew on what the source holds
//     now (its retention lease is renewed if still there). What it had
//     staged and verified stays: the staging directory survives the
//     restart (the engine keeps it) and staging's Area.Keep checks it
//     against the new plan, so verified files are not fetched again and a
//     partial file resumes after its recorded prefix. A caller watching it
//     watches again under the same id and sees it go on.
//   - A finished recovery stays readable until KeepFinished after its end.

type journalEntry struct {
	State
	// Plan is State.Plan, marshalled once per plan (planJSON). The
	// journal leaves it empty and appends it to the marshalled entry
	// (appendPlan); reading back fills it.
	Plan json.RawMessage `json:"plan,omitempty"`
	// Pin is the commit pin asked for or held on the source, PinSeq its
	// number; Lease the retention lease id on the source.
	Pin    string `json:"pin,omitempty"`
	PinSeq int    `json:"pin_seq,omitempty"`
	Lease  string `json:"lease,omitempty"`
}

// planJSON is a plan's JSON, made at its first journal: a plan never
// changes once set (setPlan sets a new one with a new planJSON), and
// marshalling a plan of 20,000 files at each of a recovery's stages took
// a fifth of the time from the last file to the end (bench case 2).
type planJSON struct {
	once sync.Once
	b    json.RawMessage
	err  error
}

func (c *planJSON) of(p *planner.Plan) (json.RawMessage, error) {
	c.once.Do(func() { c.b, c.err = json.Marshal(p) })
	return c.b, c.err
}

// knownPlanJSON is the planJSON of a plan read back from the journal as b.
func knownPlanJSON(b json.RawMessage) *planJSON {
	c := &planJSON{}
	c.once.Do(func() { c.b = b })
	return c
}

// appendPlan adds the field "plan" to obj, a JSON object, as plan, which
// is valid JSON already (json.Marshal made it). Set in journalEntry.Plan,
// json.Marshal would check and compact the whole plan again at every
// journal: 0.47 s of the target's CPU for 8 journals of a 20,000-file plan
// (bench case 2).
func appendPlan(obj, plan []byte) []byte {
	end := len(obj) - 1 // obj ends with its closing brace
	out := make([]byte, 0, len(obj)+len(plan)+len(`,"plan":`))
	out = append(out, obj[:end]...)
	if end > 1 {
		out = append(out, ',')
	}
	out = append(out, `"plan":`...)
	out = append(out, plan...)
	return append(out, '}')
}

const journalSuffix = ".recovery"

func (m *Manager) journalPath(id string) string {
	return filepath.Join(m.cfg.StateDir, id+journalSuffix)
}

// journal records a recovery's state; errors are logged, not fatal: a
// recovery that cannot be journaled runs, it only cannot resume after a
// restart (nor be read once finished).
func (m *Manager) journal(s State) {
	if m.cfg.StateDir == "" || s.DryRun {
		return
	}
	e := journalEntry{State: s, Pin: s.pinID, PinSeq: s.pinSeq, Lease: leaseID(m.cfg.NodeID, s.ID)}
	b, err := json.Marshal(e)
	if err == nil && s.Plan != nil {
		if s.planJSON == nil { // a plan neither set by setPlan nor read back
			s.planJSON = &planJSON{}
		}
		var plan json.RawMessage
		if plan, err = s.planJSON.of(s.Plan); err == nil {
			b = appendPlan(b, plan)
		}
	}
	if err == nil {
		err = fsutil.WriteFileAtomic(m.journalPath(s.ID), b, 0o644)
	}
	if err != nil {
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
// stopped resume (the engine refuses writes to their shards again),
// finished ones are listed until they expire. Then it has the engine
// delete the copies without a commit that recoveries which never
// published left (Engine.SweepUncommitted), keeping those the resumed
// recoveries write into. Call it once, before serving.
func (m *Manager) Open(ctx context.Context) error {
	if err := m.openJournal(); err != nil {
		return err
	}
	keep := map[engine.ShardID]bool{}
	for id := range m.ActiveStagings() {
		keep[id] = true
	}
	removed, err := m.cfg.Engine.SweepUncommitted(ctx, keep)
	if err != nil {
		return fmt.Errorf("recovery: remove the copies unpublished recoveries left: %w", err)
	}
	if len(removed) > 0 {
		m.cfg.Logger.Info("removed the copies without a commit that recoveries which never published left", "shards", fmt.Sprint(removed))
	}
	return nil
}

// openJournal resumes and lists the recoveries of the journal.
func (m *Manager) openJournal() error {
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
		if err == nil && len(je.Plan) > 0 {
			err = json.Unmarshal(je.Plan, &je.State.Plan)
			je.State.planJSON = knownPlanJSON(je.Plan)
		}
		if err == nil && je.ID+journalSuffix != e.Name() {
			err = fmt.Errorf("it names recovery %q", je.ID)
		}
		if err != nil || engine.ValidateName(je.ID) != nil {
			m.cfg.Logger.Warn("unreadable recovery journal file removed", "file", path, "error", err)
			os.Remove(path)
			continue
		}
		if je.Stage.Finished() {
			m.restoreFinished(je)
			continue
		}
		m.resume(je)
	}
	return nil
}

// restoreFinished lists a finished recovery of an earlier process until
// KeepFinished after its end.
func (m *Manager) restoreFinished(je journalEntry) {
	left := time.Until(je.End.Add(m.cfg.KeepFinished))
	if left <= 0 {
		m.unjournal(je.ID)
		return
	}
	r := newRecovery(je.State)
	r.counted = true
	close(r.done)
	m.mu.Lock()
	m.all[je.ID] = r
	m.mu.Unlock()
	m.forgetAfter(r, je.ID, left)
}

// resume starts again a recovery that was running when the node stopped.
func (m *Manager) resume(je journalEntry) {
	log := m.cfg.Logger.With("recovery", je.ID, "shard", je.Shard.String(), "source", je.Source)
	now := time.Now()
	s := je.State
	s.Target, s.Restarts = m.cfg.NodeID, s.Restarts+1
	if n := len(s.Stages); n > 0 && s.Stages[n-1].End.IsZero() {
		s.Stages[n-1].End = now // left when the node stopped; when exactly is not known
	}
	s.Stage, s.Error, s.Result, s.End = StageQueued, "", nil, time.Time{}
	s.Stages = append(s.Stages, StageTiming{Stage: StageQueued, Start: now})
	s.pinID, s.pinSeq = "", je.PinSeq
	r := newRecovery(s)
	req := StartRequest{Shard: s.Shard, Source: s.Source, ID: s.ID, UseSnapshots: &s.UseSnapshots, AllowDataLoss: s.AllowDataLoss}
	err := req.Shard.Validate()
	if err == nil && req.Source == "" {
		err = errors.New("it names no source")
	}
	if err == nil && m.cfg.Dial == nil {
		err = errors.New("this node dials no source")
	}
	if err == nil {
		err = checkNames(m.cfg.NodeID, req.ID)
	}
	if je.Source != "" && m.cfg.Dial != nil && je.Shard.Validate() == nil {
		// The pin asked for before the stop (granted or not: it is released
		// either way); a lease of another name (the node's id changed).
		release := journalEntry{State: State{ID: je.ID, Shard: je.Shard, Source: je.Source}, Pin: je.Pin}
		if je.Lease != "" && (err != nil || je.Lease != leaseID(m.cfg.NodeID, je.ID)) {
			release.Lease = je.Lease
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.releaseOnSource(release)
		}()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		if cur, ok := m.active[req.Shard]; ok {
			cs, _ := cur.State()
			err = fmt.Errorf("recovery %s of the same shard resumed too", cs.ID)
		}
	}
	if err == nil {
		// Refusals live in the engine's memory: refused again before the
		// recovery writes (the engine may have restarted too).
		err = m.refuseWrites(req)
	}
	if err != nil {
		log.Error("a recovery interrupted by the node stopping cannot resume", "error", err)
		if req.Shard.Validate() == nil {
			// An engine that outlived recoverd (a process beside it) may
			// still refuse writes for it.
			m.resumeWrites(req.Shard, req.ID, log)
		}
		r.s.Stage, r.s.End, r.s.Error = StageFailed, now, fmt.Sprintf("interrupted by a restart and cannot resume: %v", err)
		r.s.Stages[len(r.s.Stages)-1].End = now
		r.counted = true
		close(r.done)
		m.all[s.ID] = r
		m.cfg.Metrics.finished.WithLabelValues("unknown", string(StageFailed)).Inc()
		snap, _ := r.State()
		m.journal(snap)
		m.forgetAfter(r, s.ID, m.cfg.KeepFinished)
		return
	}
	log.Info("resuming the recovery the node was running when it stopped", "stage", je.Stage, "restarts", s.Restarts)
	m.launch(r, req, s.UseSnapshots)
}

// releaseOnSource releases the pin (and lease, if named) that an
// interrupted recovery held on its source. Failures are logged: both
// expire on the source anyway.
func (m *Manager) releaseOnSource(je journalEntry) {
	if je.Pin == "" && je.Lease == "" {
		return
	}
	ctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
	defer cancel()
	log := m.cfg.Logger.With("recovery", je.ID, "source", je.Source, "shard", je.Shard.String())
	client, err := m.cfg.Dial(ctx, je.Source)
	if err == nil && je.Lease != "" {
		err = transfer.ReleaseLease(ctx, client, je.Shard, je.Lease)
	}
	if err == nil && je.Pin != "" {
		err = transfer.ReleasePin(ctx, client, je.Pin)
	}
	if err != nil {
		log.Info("could not release what the interrupted recovery held on its source; it expires there", "pin", je.Pin, "lease", je.Lease, "error", err)
		return
	}
	log.Info("released what the interrupted recovery held on its source", "pin", je.Pin, "lease", je.Lease)
}
