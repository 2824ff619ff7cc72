package planner

import (
	"errors"
	"fmt"
	"math"

	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

// maxSeqNo bounds every seqno of the input, so that "checkpoint + 1" and
// range lengths never overflow.
const maxSeqNo = seqno.SeqNo(math.MaxInt64 - 1)

// view is the input checked and normalised: what Compute decides on and
// what Validate checks against.
type view struct {
	in       Input
	settings Settings
	opBytes  int64
	notes    []string // facts about the input worth telling, in order
	refusal  []string // not empty: no plan may run

	src       []shardstore.FileMeta // sorted by name
	srcCommit shardstore.CommitData
	srcMax    seqno.SeqNo
	retained  seqno.Range

	tgt        []shardstore.FileMeta // sorted; nil when treated as empty
	tgtHasData bool                  // tgtData is a commit with a history
	tgtData    shardstore.CommitData

	snapUsable bool
	snap       []shardstore.FileMeta // sorted
	snapID     string
	snapCommit shardstore.CommitData
}

// checkCommit checks the seqnos of a commit's user data.
func checkCommit(c shardstore.CommitData) error {
	if c.HistoryUUID == "" {
		return errors.New("it records no history UUID")
	}
	for _, s := range []seqno.SeqNo{c.MaxSeqNo, c.LocalCheckpoint} {
		if s < seqno.NoOpsPerformed || s > maxSeqNo {
			return fmt.Errorf("seqno %d is out of range", int64(s))
		}
	}
	if c.LocalCheckpoint > c.MaxSeqNo {
		return fmt.Errorf("its local checkpoint %v is above its max seqno %v", c.LocalCheckpoint, c.MaxSeqNo)
	}
	return nil
}

func weight(name string, x, def float64, notes *[]string) float64 {
	switch {
	case x == 0:
		return def
	case math.IsNaN(x) || math.IsInf(x, 0) || x < 0:
		*notes = append(*notes, fmt.Sprintf("setting %s=%v is not a usable weight: %v used instead", name, x, def))
		return def
	}
	return x
}

func prepare(in Input) *view {
	v := &view{in: in}
	src, tgt, snap := in.Source, in.Target, in.Snapshot

	v.settings = in.Settings
	v.settings.SourceByteCost = weight("source_byte_cost", v.settings.SourceByteCost, DefaultSourceByteCost, &v.notes)
	v.settings.RepoByteCost = weight("repo_byte_cost", v.settings.RepoByteCost, DefaultRepoByteCost, &v.notes)
	v.settings.OpCost = weight("op_cost", v.settings.OpCost, 0, &v.notes)
	v.opBytes = src.OpBytes
	if v.opBytes <= 0 {
		if v.opBytes < 0 {
			v.notes = append(v.notes, fmt.Sprintf("source op size %d is negative: %s per op assumed", v.opBytes, human(DefaultOpBytes)))
		}
		v.opBytes = DefaultOpBytes
	}

	// The source: anything wrong here means no plan.
	refuse := func(format string, args ...any) {
		v.refusal = append(v.refusal, "refused: "+fmt.Sprintf(format, args...))
	}
	v.srcCommit = src.Meta.Commit
	v.srcMax = src.MaxSeqNo
	v.retained = src.Retained
	if err := checkCommit(v.srcCommit); err != nil {
		refuse("the source commit is inconsistent: %v", err)
	} else if v.srcMax < v.srcCommit.MaxSeqNo || v.srcMax > maxSeqNo {
		refuse("the source reports max seqno %v, below its own commit's max seqno %v or out of range", v.srcMax, v.srcCommit.MaxSeqNo)
	}
	if !v.retained.Empty() && (v.retained.From < 0 || v.retained.To > maxSeqNo) {
		refuse("the source reports an invalid retained op range %v", v.retained)
	}
	if files, err := checkFiles(src.Meta.Files); err != nil {
		refuse("the source metadata is invalid: %v", err)
	} else {
		v.src = files
	}

	// Versions: the target must be able to read everything it receives.
	sv, okS := parseVersion(src.Version)
	tv, okT := parseVersion(tgt.Version)
	cv, okC := parseVersion(v.srcCommit.WriterVersion)
	switch {
	case !okS:
		refuse("the source's version %q is not a version, so it cannot be compared with the target's", src.Version)
	case !okT:
		refuse("the target's version %q is not a version, so it cannot be compared with the source's", tgt.Version)
	case tv.compare(sv) < 0:
		refuse("target runs %s, older than the source's %s: an older node cannot read files and ops written by a newer one; upgrade the target first", tgt.Version, src.Version)
	case !okC:
		refuse("the source commit records writer version %q, which is not a version", v.srcCommit.WriterVersion)
	case tv.compare(cv) < 0:
		refuse("the source commit was written by %s, target runs %s: an older node cannot read it; upgrade the target first", v.srcCommit.WriterVersion, tgt.Version)
	}
	if tgt.MaxFormat <= 0 {
		refuse("the target does not say which formats it reads (max format %d)", tgt.MaxFormat)
	} else if v.srcCommit.FormatVersion > tgt.MaxFormat {
		refuse("the source's files are format %d, target reads formats up to %d; upgrade the target first", v.srcCommit.FormatVersion, tgt.MaxFormat)
	} else if src.MaxFormat > tgt.MaxFormat {
		refuse("the source writes format %d, target reads formats up to %d; upgrade the target first", src.MaxFormat, tgt.MaxFormat)
	}

	// The target: anything wrong here means it is treated as empty.
	switch {
	case tgt.Empty:
		v.notes = append(v.notes, "target is a new, empty copy: nothing to reuse")
	case tgt.Unreadable != "":
		v.notes = append(v.notes, fmt.Sprintf("target metadata is unreadable (%s): treated as empty, nothing reused", tgt.Unreadable))
	default:
		files, err := checkFiles(tgt.Meta.Files)
		c := tgt.Meta.Commit
		if err == nil && c.HistoryUUID != "" {
			if cerr := checkCommit(c); cerr != nil {
				err = fmt.Errorf("its commit is inconsistent: %w", cerr)
			}
		}
		switch {
		case err != nil:
			v.notes = append(v.notes, fmt.Sprintf("target metadata is invalid (%v): treated as empty, nothing reused", err))
		case c.HistoryUUID == "" && len(files) == 0:
			v.notes = append(v.notes, "target holds no commit: treated as a new, empty copy")
		case c.HistoryUUID == "":
			v.tgt = files
			v.notes = append(v.notes, "target commit records no history UUID: its files may be reused, its ops cannot be continued")
		default:
			v.tgt = files
			v.tgtHasData = true
			v.tgtData = c
		}
	}

	// The snapshot.
	v.snapID = snap.ID
	reject := func(format string, args ...any) {
		v.notes = append(v.notes, fmt.Sprintf("snapshot %s rejected: ", snap.ID)+fmt.Sprintf(format, args...))
	}
	switch {
	case !in.Settings.UseSnapshots:
		v.notes = append(v.notes, "snapshots not used: disabled in settings")
	case snap.State == SnapshotNone || snap.State == "":
		v.notes = append(v.notes, "no snapshot of this shard in the repository")
	case snap.State == SnapshotDisabled:
		v.notes = append(v.notes, "snapshot repository disabled: no snapshot to use")
	case snap.State == SnapshotUnavailable:
		msg := snap.Err
		if msg == "" {
			msg = "no error given"
		}
		v.notes = append(v.notes, fmt.Sprintf("snapshot repository unavailable (%s): no snapshot used", msg))
	case snap.State != SnapshotAvailable:
		v.notes = append(v.notes, fmt.Sprintf("snapshot state %q not understood: no snapshot used", snap.State))
	case snap.ID == "":
		v.notes = append(v.notes, "snapshot rejected: the repository gave it no id")
	default:
		wv, okW := parseVersion(snap.Commit.WriterVersion)
		files, ferr := checkFiles(snap.Files)
		cerr := checkCommit(snap.Commit)
		switch {
		case len(snap.BadBlobs) > 0:
			reject("%s", badBlobsReason(snap.BadBlobs))
		case !okW:
			reject("its writer version %q is not a version", snap.Commit.WriterVersion)
		case okT && wv.compare(tv) > 0:
			reject("written by %s, target runs %s", snap.Commit.WriterVersion, tgt.Version)
		case snap.Commit.FormatVersion > tgt.MaxFormat:
			reject("format %d, target reads formats up to %d", snap.Commit.FormatVersion, tgt.MaxFormat)
		case ferr != nil:
			reject("its manifest is invalid: %v", ferr)
		case cerr != nil:
			reject("its commit is inconsistent: %v", cerr)
		case !okT:
			reject("the target's version is unknown")
		default:
			v.snapUsable = true
			v.snap = files
			v.snapCommit = snap.Commit
		}
	}
	return v
}

// badBlobsReason says why a snapshot with bad blobs is not used, naming
// the first bad blob.
func badBlobsReason(bad []BadBlob) string {
	b := bad[0]
	s := fmt.Sprintf("the blob %s of its file %s is marked bad", b.Blob, b.File)
	if b.Why != "" {
		s += " (" + b.Why + ")"
	}
	if n := len(bad) - 1; n > 0 {
		s += fmt.Sprintf(", and %d more of its files' blobs", n)
	}
	return s + "; it is not used until `recoverctl snapshot verify` reads the blob back whole or a newer snapshot replaces it"
}
