package recovery

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/zeebo/blake3"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/internal/staging"
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/transfer"
)

// moved is what a plan moved from the source, as the target hashed it
// while it streamed in: the files fetched from the peer with the BLAKE3 sum
// each matched (the source hashed the same bytes as it sent them), and
// the digest of the ops received. It starts anew with every plan run (a
// fallback drops what the snapshot plan staged).
type moved struct {
	mu      sync.Mutex
	fetched map[string]bool
	summed  map[string]staging.Sum
	ops     *transfer.OpsSum
	// opsSummedTo: every op from ops.From() up to it came on streams whose
	// sum the source sent and matched (transfer.OpsResult.Summed);
	// opsUnsummed: some op came without; opsDiff: a stream's sum differed.
	opsSummedTo seqno.SeqNo
	opsUnsummed bool
	opsDiff     string
}

func newMoved(opsFrom seqno.SeqNo) *moved {
	return &moved{fetched: map[string]bool{}, summed: map[string]staging.Sum{}, ops: transfer.NewOpsSum(opsFrom), opsSummedTo: opsFrom - 1}
}

// files records files fetched from the peer and the sums that matched.
func (m *moved) files(files []engine.FileMeta, res transfer.FetchResult) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, f := range files {
		m.fetched[f.Name] = true
	}
	for name, sum := range res.Summed {
		m.summed[name] = sum
	}
}

// fileCount is how many files were fetched from the peer.
func (m *moved) fileCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.fetched)
}

// addOps records ops received, in seqno order (stageOps, then catchUp).
func (m *moved) addOps(ops []engine.Op) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ops.Add(ops)
}

// opsFetched records how the sums of a FetchOps call of the ops r went.
func (m *moved) opsFetched(r seqno.Range, res transfer.OpsResult) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if res.SumDiff != "" && m.opsDiff == "" {
		m.opsDiff = res.SumDiff
	}
	switch {
	case !res.Summed:
		m.opsUnsummed = true
	case r.From <= m.opsSummedTo+1:
		m.opsSummedTo = max(m.opsSummedTo, r.To)
	}
}

// opsStreamed says whether every op up to upTo was compared with the
// source's sum as it streamed, and if so whether one differed (diff).
func (m *moved) opsStreamed(upTo seqno.SeqNo) (ok bool, diff string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !m.opsUnsummed && m.opsSummedTo >= upTo, m.opsDiff
}

// unsummed lists the files fetched from the peer whose sum was not
// compared on both ends (staged by an earlier process, or sent by a
// source that does not hash).
func (m *moved) unsummed() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for name := range m.fetched {
		if _, ok := m.summed[name]; !ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// digest combines the files' sums with an ops digest (the source's or
// this node's) into the digest the check shows.
func (m *moved) digest(ops string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, 0, len(m.summed))
	for name := range m.summed {
		names = append(names, name)
	}
	slices.Sort(names)
	h := blake3.New()
	var n [binary.MaxVarintLen64]byte
	for _, name := range names {
		sum := m.summed[name]
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(name)))])
		h.Write([]byte(name))
		h.Write(sum[:])
	}
	h.Write([]byte(ops))
	return hex.EncodeToString(h.Sum(nil))
}

// checkStreamed is the default final check (DigestAuto): it compares what
// moved, hashed on both nodes as it streamed, and reads nothing of either
// shard again. Every file fetched from the peer already had its BLAKE3 sum
// compared with the source's when it was staged (a difference failed the
// transfer). The ops from the first seqno this plan fetched up to the seqno
// the copy reached were compared the same way, stream by stream, when the
// source sent their sums (sourceOpsDigest); otherwise the source digests
// them here from its op log (the part it has just sent), and the copy's
// digest of the ops it received must equal it. The files the copy kept
// (reused) are its own at the same history, and those of a snapshot were
// checked against the snapshot's checksums. It returns a reason, and no
// error, when it cannot be made (a file hashed on one side only, a source
// that digests only content, ops no longer retained): the caller then
// compares contents.
func (a *attempt) checkStreamed(ctx context.Context) (fallback string, err error) {
	if gap := a.moved.unsummed(); len(gap) > 0 {
		return fmt.Sprintf("%d files from the peer were not hashed on both nodes as they streamed (%s: staged before a restart, or by a source that does not hash)",
			len(gap), gap[0]), nil
	}
	before, err := a.target.Info(ctx)
	if err != nil {
		return "", fmt.Errorf("read the recovered copy: %w", err)
	}
	upTo := before.Seq.MaxSeqNo
	r := seqno.Range{From: a.moved.ops.From(), To: upTo}
	if r.To < r.From-1 { // the copy holds less than the plan started from
		return fmt.Sprintf("the copy's max seqno %d is below the first op of the plan %d", upTo, r.From), nil
	}
	src, diff, why, err := a.sourceOpsDigest(ctx, r)
	if why != "" || err != nil {
		return why, err
	}
	ti, err := a.target.Info(ctx)
	if err != nil {
		return "", fmt.Errorf("read the recovered copy: %w", err)
	}
	files := a.moved.fileCount()
	c := &Check{
		Method:       CheckStreamed,
		SourceDigest: a.moved.digest(src.Digest), TargetDigest: a.moved.digest(a.moved.ops.Sum()),
		SourceHistoryUUID: src.HistoryUUID, TargetHistoryUUID: ti.Meta.Commit.HistoryUUID,
		SourceCheckpoint: int64(src.Seq.LocalCheckpoint), TargetCheckpoint: int64(ti.Seq.LocalCheckpoint),
	}
	c.Match = c.SourceDigest == c.TargetDigest && c.SourceHistoryUUID == c.TargetHistoryUUID && ti.Seq.MaxSeqNo == upTo
	if c.Match {
		what := "no file from the peer"
		if files > 0 {
			what = fmt.Sprintf("%d files from the peer had the same BLAKE3 sum on both nodes", files)
		}
		if n := a.moved.ops.Ops(); n > 0 {
			what += fmt.Sprintf(" and the %d ops %v the same digest", n, r)
		} else {
			what += fmt.Sprintf(" and no op above seqno %d", r.From-1)
		}
		c.Detail = fmt.Sprintf("the copy equals the source at seqno %d: %s, as they streamed; history %s, local checkpoint %d",
			upTo, what, c.TargetHistoryUUID, ti.Seq.LocalCheckpoint)
		if src.Seq.MaxSeqNo > upTo {
			c.Detail += fmt.Sprintf(" (the source indexed up to %d meanwhile; those ops reach the copy by replication)", src.Seq.MaxSeqNo)
		}
	} else if diff != "" {
		c.Detail = fmt.Sprintf("the copy differs from the source at seqno %d: %s", upTo, diff)
	} else {
		c.Detail = fmt.Sprintf("the copy differs from the source at seqno %d: the digest of the ops %v is %.12s on the copy (%d ops received), %.12s on the source; history %s vs %s",
			upTo, r, a.moved.ops.Sum(), a.moved.ops.Ops(), src.Digest, c.TargetHistoryUUID, c.SourceHistoryUUID)
	}
	a.r.update(func(s *State) { s.Result = c })
	if !c.Match {
		return "", errors.New(c.Detail)
	}
	return "", nil
}

// sourceOpsDigest is the source's digest of the ops r and its state. When
// every op of r was compared with the source's sum as it streamed
// (OpsOptions.Sum), the source is only asked for its state: the digest is
// the copy's own, or none and diff says which stream's sum differed.
// Otherwise the source digests r from its op log (GetOpsDigest), reading
// the ops again; why says why that cannot be made either.
func (a *attempt) sourceOpsDigest(ctx context.Context, r seqno.Range) (src transfer.Digest, diff, why string, err error) {
	if streamed, diff := a.moved.opsStreamed(r.To); streamed {
		err := a.callSourceWithin(ctx, "ask the source for its state", 0, func(ctx context.Context) error {
			info, err := transfer.GetShardInfo(ctx, a.client, a.shard)
			src = transfer.Digest{HistoryUUID: info.Meta.Commit.HistoryUUID, Seq: info.Seq, UpTo: r.To}
			return err
		})
		if err != nil {
			return src, "", "", fmt.Errorf("ask the source for its state: %w", err)
		}
		if diff == "" {
			src.Digest = a.moved.ops.Sum()
		}
		return src, diff, "", nil
	}
	err = a.callSourceWithin(ctx, "ask the source for the digest of the ops it sent", 0, func(ctx context.Context) error {
		var err error
		src, err = transfer.GetOpsDigest(ctx, a.client, a.shard, r)
		return err
	})
	if errors.Is(err, transfer.ErrNoOpsDigest) || errors.Is(err, seqno.ErrCompacted) {
		return src, "", err.Error(), nil
	}
	if err != nil {
		return src, "", "", fmt.Errorf("ask the source for the digest of its ops: %w", err)
	}
	return src, "", "", nil
}
