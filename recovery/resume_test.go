package recovery

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/transfer"
)

// restartManager builds the manager of the node after a restart: the same
// configuration, state directory and shards, then Open.
func restartManager(t *testing.T, e *env) *Manager {
	t.Helper()
	cfg := e.m.cfg
	cfg.Metrics = NewMetrics(nil)
	m := NewManager(cfg)
	t.Cleanup(m.Close)
	if err := m.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	return m
}

func waitDone(t *testing.T, r *Recovery) State {
	t.Helper()
	select {
	case <-r.Done():
	case <-time.After(time.Minute):
		t.Fatal("recovery did not finish in a minute")
	}
	s, _ := r.State()
	return s
}

// stagedBytes sums what a stopped recovery left in its staging directory:
// complete files and the rest.
func stagedBytes(t *testing.T, dir string, files map[string]int64) (complete, partial int64) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		length, ok := files[e.Name()]
		if !ok {
			continue
		}
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if info.Size() == length {
			complete += length
		} else {
			partial += info.Size()
		}
	}
	return complete, partial
}

// A node stopped in the middle of a recovery (Close) pauses it: journal,
// staging and the shard being created stay, nothing stays held on the
// source. Started again (Open), the node resumes it by itself under the
// same id, and the source sends neither the files verified before the stop
// nor the checked prefix of the partial ones again.
func TestStoppedNodeResumesTheRecovery(t *testing.T) {
	e := newEnv(t, shardstore.Options{}, Config{StateDir: t.TempDir(), Throttle: transfer.NewThrottle(1 << 20),
		Fetch: transfer.FetchOptions{Parallel: 2, ChunkSize: 64 << 10, NoCompression: true}})
	src := e.source()
	for i := 0; i < 6; i++ {
		write(t, src, 600, i*600, 1024)
		flush(t, src)
	}
	r, err := e.m.Start(StartRequest{Shard: shardID, Source: e.addr, ID: "r-resume"})
	if err != nil {
		t.Fatal(err)
	}
	for {
		// Stop with two files done and two half copied.
		s, _ := r.State()
		if c := s.Totals.FromPeer; c.RecoveredFiles >= 2 && c.RecoveredBytes > c.Bytes*45/100 {
			break
		}
		if s.Stage.Finished() {
			t.Fatalf("recovery ended %s before the stop: %s", s.Stage, s.Error)
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.m.Close()
	s, _ := r.State()
	if s.Stage.Finished() {
		t.Fatalf("the stop ended the recovery: %s %s", s.Stage, s.Error)
	}
	if _, err := os.Stat(e.m.journalPath("r-resume")); err != nil {
		t.Fatalf("journal of the paused recovery: %v", err)
	}
	// Until the process ends its staging is not a leftover for cleanup.
	if got := e.m.ActiveStagings()[shardID]; got != "r-resume" {
		t.Fatalf("after the stop the node's active stagings are %v, want the paused recovery's", e.m.ActiveStagings())
	}
	if st := e.peer.Stats(); st.Pins != 0 || len(src.Leases().List()) != 0 {
		t.Fatalf("the paused recovery holds %d pins and leases %v on the source", st.Pins, src.Leases().List())
	}
	lengths := map[string]int64{}
	var planBytes int64
	for _, f := range s.Plan.FromPeer {
		lengths[f.Name] = f.Length
		planBytes += f.Length
	}
	complete, partial := stagedBytes(t, filepath.Join(shardstore.Dir(e.tgt.dir, shardID), "staging", "r-resume"), lengths)
	if complete == 0 || partial == 0 {
		t.Fatalf("staged before the stop: %d bytes in whole files, %d in part; want both", complete, partial)
	}
	sentBefore := e.peer.Stats().FileWireBytes

	m2 := restartManager(t, e)
	r2, err := m2.Get("r-resume")
	if err != nil {
		t.Fatal(err)
	}
	s2 := waitDone(t, r2)
	requireDone(t, s2)
	if s2.Restarts != 1 || s2.ID != "r-resume" || !s2.Start.Equal(s.Start) {
		t.Fatalf("resumed as %s (restarts %d, start %v), want r-resume, 1 restart, started %v", s2.ID, s2.Restarts, s2.Start, s.Start)
	}
	sentAfter := e.peer.Stats().FileWireBytes - sentBefore
	t.Logf("plan %d bytes; staged before the stop: %d whole, %d in part; sent after the restart: %d", planBytes, complete, partial, sentAfter)
	// Up to a chunk per file in flight may have been written past its
	// checked prefix when the stop came.
	if slack := int64(2 << 20); sentAfter > planBytes-complete || sentAfter > planBytes-complete-partial+slack {
		t.Fatalf("after the restart the source sent %d bytes of a %d-byte plan; %d bytes were staged whole and %d in part before the stop",
			sentAfter, planBytes, complete, partial)
	}
	if digest(t, e.target()) != digest(t, src) {
		t.Fatal("copy differs")
	}
	// The files staged before the stop have no streamed sum in this
	// process: the default check falls back to the content digests.
	if s2.Result.Method != CheckContent || !s2.Result.Match {
		t.Fatalf("check after the restart: %s, match %v; want content digests that match", s2.Result.Method, s2.Result.Match)
	}
	noStaging(t, e.target())
	if st, ls := e.peer.Stats(), src.Leases().List(); st.Pins != 0 || len(ls) != 1 || ls[0].ID != "copy-target" { // handed over to the copy
		t.Fatalf("after the recovery the source holds %d pins and leases %v", st.Pins, ls)
	}
}

// The commit pin is named and journaled before it is asked for: a node
// that died after the source granted it, before it heard the answer,
// releases it when it starts again instead of leaving it to its TTL
// (where it holds files and one of the source's outgoing slots).
func TestPinAskedBeforeAStopIsReleasedAtTheNextStart(t *testing.T) {
	e := newEnv(t, shardstore.Options{}, Config{StateDir: t.TempDir(), PinTTL: time.Hour})
	src := e.source()
	write(t, src, 200, 0, 256)
	flush(t, src)
	e.faults.loseAnswers("/recoverd.v1.PeerService/PinCommit", true)
	r, err := e.m.Start(StartRequest{Shard: shardID, Source: e.addr, ID: "r-pin"})
	if err != nil {
		t.Fatal(err)
	}
	for e.peer.Stats().Pins == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	e.m.Close() // the answer never came: the recovery does not know it holds a pin
	if s, _ := r.State(); s.Stage.Finished() || e.peer.Stats().Pins != 1 {
		t.Fatalf("before the restart: stage %s, %d pins on the source (want 1: its answer was lost)", s.Stage, e.peer.Stats().Pins)
	}
	e.faults.loseAnswers("/recoverd.v1.PeerService/PinCommit", false)
	m2 := restartManager(t, e)
	r2, err := m2.Get("r-pin")
	if err != nil {
		t.Fatal(err)
	}
	requireDone(t, waitDone(t, r2))
	for deadline := time.Now().Add(10 * time.Second); e.peer.Stats().Pins != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d pins left on the source after the restart (TTL 1h)", e.peer.Stats().Pins)
		}
	}
}

// Finished recoveries outlive a restart for KeepFinished after their end
// (then they are forgotten and their journal goes); one that ended longer
// ago than that is not listed.
func TestFinishedRecoveriesOutliveARestart(t *testing.T) {
	e := newEnv(t, shardstore.Options{}, Config{StateDir: t.TempDir(), KeepFinished: time.Hour})
	src := e.source()
	write(t, src, 100, 0, 64)
	flush(t, src)
	done := e.run(StartRequest{ID: "r-done"})
	requireDone(t, done)
	e.m.Close()

	m2 := restartManager(t, e)
	r, err := m2.Get("r-done")
	if err != nil {
		t.Fatalf("a finished recovery was forgotten at the restart: %v", err)
	}
	s, _ := r.State()
	if s.Stage != StageDone || s.Result == nil || !s.Result.Match || s.Plan == nil || s.Plan.Kind != done.Plan.Kind ||
		!s.End.Equal(done.End) || s.Totals != done.Totals || len(s.Files) != len(done.Files) {
		t.Fatalf("after the restart: %+v\nbefore: %+v", s, done)
	}
	// The journal marshals a plan once (planJSON): it comes back whole.
	if got, want := mustJSON(t, s.Plan), mustJSON(t, done.Plan); got != want || len(done.Plan.FromPeer) == 0 {
		t.Fatalf("plan after the restart:\n%s\nbefore:\n%s", got, want)
	}
	select {
	case <-r.Done():
	default:
		t.Fatal("a restored finished recovery is not done")
	}
	m2.Close()

	e.m.cfg.KeepFinished = time.Until(done.End.Add(300 * time.Millisecond))
	m3 := restartManager(t, e)
	if _, err := m3.Get("r-done"); err != nil {
		t.Fatalf("within KeepFinished: %v", err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, err := m3.Get("r-done")
		_, ferr := os.Stat(m3.journalPath("r-done"))
		if err != nil && os.IsNotExist(ferr) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("KeepFinished passed: get %v, journal file %v", err, ferr)
		}
	}
	m3.Close()
	if _, err := restartManager(t, e).Get("r-done"); err == nil {
		t.Fatal("an expired recovery is listed after a restart")
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
