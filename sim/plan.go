package main

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"slices"

	"github.com/recoverd/recoverd/planner"
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

// The shard model the planner is given. Every shard's commit holds
// FilesPerShard segment files, each FileRatio times the size of the one
// before (seg_000 the oldest and largest), summing to the shard's size.
// Snapshots are taken of the primary (copy 0). A shard written since its
// latest snapshot (not idle) has its newest files, Churn of its bytes,
// rewritten since (same names, other contents), and OpsSinceSnapshot ops
// above the snapshot's checkpoint. A replica's files hold the same data
// but are physically different (its own flushes and merges), so none is
// the same as the primary's or the snapshot's (DESIGN.md section 3). The
// source retains ops from the snapshot's checkpoint (the snapshot lease)
// and RetainOps below its max seqno.
const (
	sourceMaxSeqNo = 1_000_000
	retainOps      = 10_000 // recoverd --retain-ops default
	snapshotID     = "s-20250101T000000.000Z-abcdef"
)

// planned is what the simulator needs of a plan.
type planned struct {
	kind      planner.Kind
	peer      []int64 // file sizes from the source, largest first
	snap      []int64 // file sizes from the repository, in the plan's (name) order
	opsBytes  int64
	fallback  *planned
	shardSize int64
}

// shardModel builds planner inputs.
type shardModel struct {
	cfg   *Config
	names []string
	// cache holds the plans computed: shards of the same (rounded) size
	// and state get the same plan from the pure planner.
	cache map[planKey]*planned
}

type planKey struct {
	size                                int64
	idle, snap, sourceReplica, withData bool
	state                               planner.SnapshotState
}

func newShardModel(cfg *Config) *shardModel {
	m := &shardModel{cfg: cfg, cache: map[planKey]*planned{}}
	for i := range cfg.FilesPerShard {
		m.names = append(m.names, fmt.Sprintf("seg_%03d", i))
	}
	return m
}

// fileSizes splits size into the shard's files, largest first.
func (m *shardModel) fileSizes(size int64) []int64 {
	k := m.cfg.FilesPerShard
	w, sum := 1.0, 0.0
	for range k {
		sum += w
		w *= m.cfg.FileRatio
	}
	out := make([]int64, k)
	w = 1
	var total int64
	for i := range k {
		out[i] = max(int64(float64(size)*w/sum), 4096)
		total += out[i]
		w *= m.cfg.FileRatio
	}
	out[0] += size - total // the remainder (may be negative for tiny shards)
	out[0] = max(out[0], 4096)
	return out
}

func crc(shard int32, file int, version byte) uint32 {
	h := fnv.New32a()
	h.Write([]byte{byte(shard), byte(shard >> 8), byte(shard >> 16), byte(shard >> 24), byte(file), byte(file >> 8), version})
	return h.Sum32()
}

func commit(maxSeq int64, term uint64) shardstore.CommitData {
	return shardstore.CommitData{HistoryUUID: "history", MaxSeqNo: seqno.SeqNo(maxSeq), LocalCheckpoint: seqno.SeqNo(maxSeq),
		GlobalCheckpoint: seqno.SeqNo(maxSeq), PrimaryTerm: term, WriterVersion: shardstore.WriterVersion, FormatVersion: shardstore.FormatVersion}
}

// input is the planner's input for rebuilding l. snapshotState overrides
// the repository's answer when it is not available (the planning requests
// failed).
func (m *shardModel) input(cl *cluster, l lostCopy, snapshotState planner.SnapshotState) planner.Input {
	s := l.shard
	sizes := m.fileSizes(cl.size[s])
	idle := cl.idle[s]
	churned := len(sizes) // files [churned:] were rewritten since the snapshot
	if !idle {
		var acc int64
		limit := int64(m.cfg.Churn * float64(cl.size[s]))
		for churned > 0 && acc < limit {
			churned--
			acc += sizes[churned]
		}
	}
	snapMax := int64(sourceMaxSeqNo)
	if !idle {
		snapMax -= m.cfg.OpsSinceSnapshot
	}
	var src, snap, tgt []shardstore.FileMeta
	for i, n := range sizes {
		name := m.names[i]
		primary := shardstore.FileMeta{Name: name, Length: n, CRC32C: crc(s, i, 'p'), WriterUUID: "primary"}
		if l.sourceReplica {
			src = append(src, shardstore.FileMeta{Name: name, Length: n, CRC32C: crc(s, i, 'r'), WriterUUID: "replica"})
		} else {
			src = append(src, primary)
		}
		if i >= churned {
			snap = append(snap, shardstore.FileMeta{Name: name, Length: n, CRC32C: crc(s, i, 'o'), WriterUUID: "primary"})
		} else {
			snap = append(snap, primary)
		}
		if l.withData {
			tgt = append(tgt, shardstore.FileMeta{Name: name, Length: n, CRC32C: crc(s, i, 't'), WriterUUID: "target"})
		}
	}
	var term uint64 = 1
	if l.sourceReplica {
		term = 2 // promoted
	}
	in := planner.Input{
		Source: planner.Source{
			Meta:     shardstore.Metadata{Generation: 7, Files: src, Commit: commit(sourceMaxSeqNo, term)},
			MaxSeqNo: sourceMaxSeqNo,
			Retained: seqno.Range{From: seqno.SeqNo(min(snapMax+1, sourceMaxSeqNo+1-retainOps)), To: sourceMaxSeqNo},
			OpBytes:  m.cfg.OpBytes, Version: shardstore.WriterVersion, MaxFormat: shardstore.FormatVersion,
		},
		Target:   planner.Target{Empty: !l.withData, Version: shardstore.WriterVersion, MaxFormat: shardstore.FormatVersion},
		Settings: planner.DefaultSettings(),
	}
	in.Settings.UseSnapshots = m.cfg.UseSnapshots
	if l.withData {
		in.Target.Meta = shardstore.Metadata{Generation: 6, Files: tgt, Commit: commit(sourceMaxSeqNo-m.cfg.OpsWhileDown, 1)}
	}
	switch {
	case snapshotState != planner.SnapshotAvailable:
		in.Snapshot = planner.Snapshot{State: snapshotState, Err: "SlowDown (HTTP 503) after the retries"}
	case !cl.snap[s]:
		in.Snapshot = planner.Snapshot{State: planner.SnapshotNone}
	default:
		in.Snapshot = planner.Snapshot{State: planner.SnapshotAvailable, ID: snapshotID, Files: snap, Commit: commit(snapMax, 1)}
	}
	return in
}

// plan runs the real planner on l's input. The result's slices are
// shared: read only.
func (m *shardModel) plan(cl *cluster, l lostCopy, snapshotState planner.SnapshotState) (*planned, error) {
	s := l.shard
	key := planKey{cl.size[s], cl.idle[s], cl.snap[s], l.sourceReplica, l.withData, snapshotState}
	if p, ok := m.cache[key]; ok {
		return p, nil
	}
	in := m.input(cl, l, snapshotState)
	p := planner.Compute(in)
	if p.Refused() {
		return nil, fmt.Errorf("sim: the planner refused shard %d: %v", l.shard, p.Reasons)
	}
	if err := p.Validate(in); err != nil {
		return nil, fmt.Errorf("sim: the planner's plan for shard %d is invalid: %w", l.shard, err)
	}
	out := convert(p)
	out.shardSize = cl.size[s]
	if out.fallback != nil {
		out.fallback.shardSize = out.shardSize
	}
	m.cache[key] = &out
	return &out, nil
}

func convert(p planner.Plan) planned {
	out := planned{kind: p.Kind, opsBytes: p.OpsBytes}
	for _, f := range p.FromPeer {
		out.peer = append(out.peer, f.Length)
	}
	slices.SortFunc(out.peer, func(a, b int64) int { return cmp.Compare(b, a) }) // largest first, as FetchFiles
	for _, f := range p.FromSnapshot {
		out.snap = append(out.snap, f.Length)
	}
	if p.Fallback != nil {
		fb := convert(*p.Fallback)
		out.fallback = &fb
	}
	return out
}

// bytes is what the plan moves: from the source (files), from the
// repository, and ops.
func (p *planned) bytes() (peer, repo int64) {
	for _, n := range p.peer {
		peer += n
	}
	for _, n := range p.snap {
		repo += n
	}
	return peer, repo
}
