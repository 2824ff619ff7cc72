package recovery

import (
	"sync"
	"time"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/planner"
	"github.com/recoverd/recoverd/snapshot"
)

// Stage is where a recovery is.
type Stage string

const (
	StageQueued    Stage = "queued"
	StageInit      Stage = "init"
	StagePlan      Stage = "plan"
	StageFiles     Stage = "files"
	StageVerify    Stage = "verify"
	StageFinalize  Stage = "finalize"
	StageOps       Stage = "ops"
	StageDone      Stage = "done"
	StageFailed    Stage = "failed"
	StageCancelled Stage = "cancelled"
)

// Finished reports whether s is a final stage.
func (s Stage) Finished() bool { return s == StageDone || s == StageFailed || s == StageCancelled }

// FileSource says where a file comes from.
type FileSource string

const (
	FromPeer     FileSource = "peer"
	FromSnapshot FileSource = "snapshot"
	Reused       FileSource = "reused"
)

// FileProgress is one file of the recovery.
type FileProgress struct {
	Name      string     `json:"name"`
	Length    int64      `json:"length"`
	Recovered int64      `json:"recovered_bytes"`
	Source    FileSource `json:"source"`
	Done      bool       `json:"done"`
}

// Counts are files and bytes, planned and recovered so far.
type Counts struct {
	Files          int64 `json:"files"`
	Bytes          int64 `json:"bytes"`
	RecoveredFiles int64 `json:"recovered_files"`
	RecoveredBytes int64 `json:"recovered_bytes"`
}

// Totals split the file set by source.
type Totals struct {
	Total        Counts `json:"total"`
	Reused       Counts `json:"reused"`
	FromPeer     Counts `json:"from_peer"`
	FromSnapshot Counts `json:"from_snapshot"`
}

// StageTiming is when a stage was entered and left.
type StageTiming struct {
	Stage Stage     `json:"stage"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end,omitempty"`
}

// Fallback records a plan (or a file) abandoned for another source.
type Fallback struct {
	Time  time.Time    `json:"time"`
	Cause string       `json:"cause"`
	From  planner.Kind `json:"from"`
	To    planner.Kind `json:"to"`
}

// Check compares the recovered copy with the source at the end.
type Check struct {
	SourceDigest, TargetDigest           string
	SourceHistoryUUID, TargetHistoryUUID string
	SourceCheckpoint, TargetCheckpoint   int64
	Match                                bool
	Detail                               string
	// Method is what the digests are of.
	Method CheckMethod
}

// CheckMethod is what the final check's digests are of.
type CheckMethod string

const (
	// CheckStreamed: the BLAKE3 sum of every file moved from the peer and the
	// digest of the ops moved, computed on both nodes from the bytes as
	// they streamed (nothing read a second time).
	CheckStreamed CheckMethod = "streamed"
	// CheckContent: the content at the seqno the copy reached, read whole
	// on both nodes (engine.Reader.DigestAt).
	CheckContent CheckMethod = "content"
	// CheckSeqNos: no digest; history, checkpoints and max seqnos.
	CheckSeqNos CheckMethod = "seqnos"
)

// State is a consistent copy of a recovery's state.
type State struct {
	ID           string         `json:"id"`
	Shard        engine.ShardID `json:"shard"`
	Source       string         `json:"source"`
	Target       string         `json:"target"`
	Stage        Stage          `json:"stage"`
	UseSnapshots bool           `json:"use_snapshots"`
	DryRun       bool           `json:"dry_run"`
	// AllowDataLoss: the request accepts overwriting a target ahead of
	// its source.
	AllowDataLoss bool           `json:"allow_data_loss,omitempty"`
	Plan          *planner.Plan  `json:"plan,omitempty"`
	Files         []FileProgress `json:"files"`
	Totals        Totals         `json:"totals"`
	OpsTotal      int64          `json:"ops_total"`
	OpsReplayed   int64          `json:"ops_replayed"`
	ThrottleWait  time.Duration  `json:"throttle_wait"`
	Stages        []StageTiming  `json:"stages"`
	Fallbacks     []Fallback     `json:"fallbacks"`
	Error         string         `json:"error,omitempty"`
	Result        *Check         `json:"result,omitempty"`
	// HandOff, once the recovery succeeded, says its lease on the source
	// became the copy's (nil: released, as the engine has no replication).
	HandOff *HandOff  `json:"hand_off,omitempty"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end,omitempty"`
	Resumes int64     `json:"resumes"`
	Replans int       `json:"replans"`
	// Restarts counts the times the node restarted during the recovery;
	// each time it resumed under the same id.
	Restarts int `json:"restarts,omitempty"`
	// S3Requests counts the requests sent to an S3 repository.
	S3Requests snapshot.RequestTally `json:"s3_requests"`

	// pinID is the commit pin asked for or held on the source, the
	// pinSeq-th of the recovery (journaled before it is asked for, so that
	// a restart after a crash can release it).
	pinID  string
	pinSeq int
	// planJSON caches Plan's JSON for the journal.
	planJSON *planJSON
}

// Recovery is one recovery's live state. Its methods are safe for
// concurrent use; watchers are woken on every change.
type Recovery struct {
	mu      sync.Mutex
	s       State
	fileIdx map[string]int
	// stageChanged is closed and replaced when the stage changes; progress
	// is polled (it changes with every chunk).
	stageChanged chan struct{}
	cancel       func(error)
	done         chan struct{}
	// onStage is called with the state at each stage change: outside the
	// lock after it, or for a final stage under the lock before anyone
	// sees it (see setStage).
	onStage func(State)
	// slot is its hold on a node slot (nil when planning only); only the
	// goroutine running the recovery uses it.
	slot *nodeSlot
	// counted is set once the recovery is counted as started (by the kind
	// of its first plan).
	counted bool
	// requests counts the S3 requests of this process's run of the
	// recovery (State adds them to S3Requests).
	requests snapshot.RequestCounter
}

// countStart reports whether the recovery still has to be counted as
// started, and marks it counted.
func (r *Recovery) countStart() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	first := !r.counted
	r.counted = true
	return first
}

func newRecovery(s State) *Recovery {
	return &Recovery{s: s, fileIdx: map[string]int{}, stageChanged: make(chan struct{}), done: make(chan struct{})}
}

// update applies fn under the lock.
func (r *Recovery) update(fn func(s *State)) {
	r.mu.Lock()
	fn(&r.s)
	r.mu.Unlock()
}

// State returns a copy of the state and a channel closed at the next
// change of stage.
func (r *Recovery) State() (State, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.copyLocked(), r.stageChanged
}

func (r *Recovery) copyLocked() State {
	s := r.s
	s.S3Requests = r.s.S3Requests.Plus(r.requests.Tally())
	s.Files = append([]FileProgress(nil), r.s.Files...)
	s.Stages = append([]StageTiming(nil), r.s.Stages...)
	s.Fallbacks = append([]Fallback(nil), r.s.Fallbacks...)
	if r.s.Result != nil {
		c := *r.s.Result
		s.Result = &c
	}
	return s
}

// Done is closed when the recovery has finished and released everything.
func (r *Recovery) Done() <-chan struct{} { return r.done }

// setStage enters stage st and calls onStage with the new state: for a
// final stage before anyone can see it (the end is journaled before a
// watcher or a caller learns of it), for the others after.
func (r *Recovery) setStage(st Stage) {
	now := time.Now()
	r.mu.Lock()
	s := &r.s
	if n := len(s.Stages); n > 0 && s.Stages[n-1].End.IsZero() {
		s.Stages[n-1].End = now
	}
	s.Stage = st
	if st.Finished() {
		s.End = now
		if r.onStage != nil {
			r.onStage(r.copyLocked())
		}
	} else {
		s.Stages = append(s.Stages, StageTiming{Stage: st, Start: now})
	}
	close(r.stageChanged)
	r.stageChanged = make(chan struct{})
	r.mu.Unlock()
	if r.onStage != nil && !st.Finished() {
		snap, _ := r.State()
		r.onStage(snap)
	}
}

// setPlan records the plan being run and resets the file progress to it.
func (r *Recovery) setPlan(p planner.Plan) {
	r.update(func(s *State) {
		s.Plan, s.planJSON = &p, &planJSON{}
		s.Files = s.Files[:0]
		s.Totals = Totals{}
		clear(r.fileIdx)
		add := func(files []engine.FileMeta, src FileSource, c *Counts) {
			for _, f := range files {
				fp := FileProgress{Name: f.Name, Length: f.Length, Source: src}
				if src == Reused {
					fp.Recovered, fp.Done = f.Length, true
					c.RecoveredFiles++
					c.RecoveredBytes += f.Length
				}
				r.fileIdx[f.Name] = len(s.Files)
				s.Files = append(s.Files, fp)
				c.Files++
				c.Bytes += f.Length
			}
		}
		add(p.Reused, Reused, &s.Totals.Reused)
		add(p.FromSnapshot, FromSnapshot, &s.Totals.FromSnapshot)
		add(p.FromPeer, FromPeer, &s.Totals.FromPeer)
		s.Totals.Total = sumCounts(s.Totals.Reused, s.Totals.FromPeer, s.Totals.FromSnapshot)
		// The plan's ops are staged anew (prepareStaging discards what an
		// earlier plan staged): the count starts again with them.
		s.OpsTotal, s.OpsReplayed = p.Ops.Len(), 0
	})
}

func sumCounts(cs ...Counts) Counts {
	var t Counts
	for _, c := range cs {
		t.Files += c.Files
		t.Bytes += c.Bytes
		t.RecoveredFiles += c.RecoveredFiles
		t.RecoveredBytes += c.RecoveredBytes
	}
	return t
}

func (s *State) counts(src FileSource) *Counts {
	switch src {
	case FromPeer:
		return &s.Totals.FromPeer
	case FromSnapshot:
		return &s.Totals.FromSnapshot
	}
	return &s.Totals.Reused
}

// addBytes records n more bytes of a file.
func (r *Recovery) addBytes(name string, n int64) {
	r.update(func(s *State) {
		i, ok := r.fileIdx[name]
		if !ok {
			return
		}
		f := &s.Files[i]
		f.Recovered += n
		s.counts(f.Source).RecoveredBytes += n
		s.Totals.Total.RecoveredBytes += n
	})
}

// fileDone marks a file verified.
func (r *Recovery) fileDone(name string) {
	r.update(func(s *State) {
		i, ok := r.fileIdx[name]
		if !ok || s.Files[i].Done {
			return
		}
		f := &s.Files[i]
		f.Done = true
		if extra := f.Length - f.Recovered; extra > 0 { // staged by an earlier attempt
			s.counts(f.Source).RecoveredBytes += extra
			s.Totals.Total.RecoveredBytes += extra
			f.Recovered = f.Length
		}
		s.counts(f.Source).RecoveredFiles++
		s.Totals.Total.RecoveredFiles++
	})
}

// moveToPeer re-sources a file whose snapshot download failed: its bytes so
// far are discarded.
func (r *Recovery) moveToPeer(name string) {
	r.update(func(s *State) {
		i, ok := r.fileIdx[name]
		if !ok {
			return
		}
		f := &s.Files[i]
		from := s.counts(f.Source)
		from.Files--
		from.Bytes -= f.Length
		from.RecoveredBytes -= f.Recovered
		s.Totals.Total.RecoveredBytes -= f.Recovered
		f.Recovered, f.Source = 0, FromPeer
		s.Totals.FromPeer.Files++
		s.Totals.FromPeer.Bytes += f.Length
	})
}

func (r *Recovery) addFallback(f Fallback) {
	r.update(func(s *State) { s.Fallbacks = append(s.Fallbacks, f) })
}

func (r *Recovery) addOps(total, replayed int64) {
	r.update(func(s *State) {
		s.OpsTotal += total
		s.OpsReplayed += replayed
	})
}

func (r *Recovery) addThrottle(d time.Duration) {
	r.update(func(s *State) { s.ThrottleWait += d })
}

func (r *Recovery) addResume() { r.update(func(s *State) { s.Resumes++ }) }

// nextPin names the next commit pin the recovery asks its source for.
func (r *Recovery) nextPin(node string) string {
	var id string
	r.update(func(s *State) {
		s.pinSeq++
		s.pinID = pinName(node, s.ID, s.pinSeq)
		id = s.pinID
	})
	return id
}
