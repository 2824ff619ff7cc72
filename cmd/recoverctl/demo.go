package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
)

func newDemoCmd(g *globalFlags) *cobra.Command {
	var dir, recoverd, shardd string
	var keep, embedded bool
	var docs int
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the main job end to end: three nodes, a scheduled snapshot, a failover, a snapshot + ops recovery and a fallback",
		Long: `demo starts three nodes on loopback with a local snapshot directory.
Each node is shardd (the reference engine: it owns the shards and serves
their document API) and recoverd beside it as a sidecar (--engine on
shardd's socket, the same data directory); with --embedded each node is one
recoverd that holds its shards itself. The demo writes documents on the
primary and replicates them to a replica that stores them in other files,
lets the snapshot policy snapshot the primary (every second) while the
replica's snapshot retention lease follows it, writes more, fails the
primary over to the replica, writes more on the new primary, builds a new
replica with a recovery (the snapshot plus the ops the lease kept: no byte
of the files from the new primary), then brings the
old primary back empty and breaks the snapshot in the middle of its
recovery to show the fallback to the peer. It ends with a verification
table and stops every process it started.`,
		Example: `  recoverctl demo
  recoverctl demo --embedded
  recoverctl demo --dir /tmp/recoverd-demo --keep --docs 100000`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if recoverd == "" {
				self, err := os.Executable()
				if err != nil {
					return err
				}
				recoverd = filepath.Join(filepath.Dir(self), "recoverd")
			}
			if _, err := os.Stat(recoverd); err != nil {
				return usagef("recoverd binary not found at %s (build it: make build, or pass --recoverd)", recoverd)
			}
			if shardd == "" {
				shardd = filepath.Join(filepath.Dir(recoverd), "shardd")
			}
			if _, err := os.Stat(shardd); err != nil && !embedded {
				return usagef("shardd binary not found at %s (build it: make build, pass --shardd, or run --embedded)", shardd)
			}
			if dir == "" {
				d, err := os.MkdirTemp("", "recoverd-demo-")
				if err != nil {
					return err
				}
				dir = d
				if !keep {
					defer os.RemoveAll(d)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			d := &demo{w: cmd.OutOrStdout(), dir: dir, bin: recoverd, g: g, cmd: cmd, docs: docs}
			if !embedded {
				d.shardd = shardd
			}
			if g.output == "json" { // the story goes to stderr, the verification to stdout
				d.w = cmd.ErrOrStderr()
			}
			defer d.stopAll()
			if err := d.run(ctx); err != nil {
				return err
			}
			return emit(cmd, g, d.rows, func(io.Writer) {})
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "work directory (default: a temporary one, removed at the end)")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the work directory (data, logs, repository)")
	cmd.Flags().StringVar(&recoverd, "recoverd", "", "recoverd binary (default: next to recoverctl)")
	cmd.Flags().StringVar(&shardd, "shardd", "", "shardd binary (default: next to recoverd)")
	cmd.Flags().BoolVar(&embedded, "embedded", false, "run each node as one recoverd holding its shards (no shardd)")
	cmd.Flags().IntVar(&docs, "docs", 40000, "documents to write (1 KiB each)")
	return cmd
}

// demoRow is one line of the final verification.
type demoRow struct {
	Node            string `json:"node"`
	Role            string `json:"role"`
	Digest          string `json:"digest"`
	HistoryUUID     string `json:"history_uuid"`
	PrimaryTerm     uint64 `json:"primary_term"`
	MaxSeqNo        int64  `json:"max_seqno"`
	LocalCheckpoint int64  `json:"local_checkpoint"`
	Segments        int64  `json:"segments"`
}

type demo struct {
	rows []demoRow
	w    io.Writer
	dir  string
	bin  string
	// shardd is the engine binary of the sidecar mode; empty: embedded.
	shardd string
	g      *globalFlags
	cmd    *cobra.Command
	docs   int
	nodes  []*demoNode
}

var demoShard = &pb.ShardId{Index: "demo", Shard: 0}

func (d *demo) step(format string, args ...any) { fmt.Fprintf(d.w, "\n==> "+format+"\n", args...) }
func (d *demo) say(format string, args ...any)  { fmt.Fprintf(d.w, "    "+format+"\n", args...) }

// recover runs a recovery onto target from source and prints the plan,
// the progress and the outcome, as recoverctl recover --wait does.
func (d *demo) recover(ctx context.Context, target, source *demoNode, during func(id string)) (*pb.Recovery, error) {
	resp, err := target.rec.StartRecovery(ctx, &pb.StartRecoveryRequest{Shard: demoShard, SourceAddress: source.peerAddr})
	if err != nil {
		return nil, err
	}
	id := resp.Recovery.Id
	if during != nil {
		go during(id)
	}
	stream, err := target.rec.WatchRecovery(ctx, &pb.WatchRecoveryRequest{Id: id, MinInterval: durationpb.New(time.Second)})
	if err != nil {
		return nil, err
	}
	var last *pb.Recovery
	shown := false
	lv := &lineView{w: indent{d.w}}
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		last = r.Recovery
		if !shown && last.Plan != nil {
			printHeader(indent{d.w}, last)
			shown = true
		}
		if shown {
			lv.update(last)
		}
	}
	printSummary(indent{d.w}, last)
	if last.Stage != pb.Stage_STAGE_DONE {
		return last, fmt.Errorf("recovery %s ended %s: %s", id, stageName(last.Stage), last.Error)
	}
	return last, nil
}

type indent struct{ w io.Writer }

func (i indent) Write(p []byte) (int, error) {
	lines := strings.SplitAfter(string(p), "\n")
	for _, l := range lines {
		if l == "" {
			continue
		}
		if _, err := io.WriteString(i.w, "    "+l); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (d *demo) run(ctx context.Context) error {
	start := time.Now()
	for _, name := range []string{"n1", "n2", "n3"} {
		d.nodes = append(d.nodes, &demoNode{name: name, data: filepath.Join(d.dir, name)})
	}
	n1, n2, n3 := d.nodes[0], d.nodes[1], d.nodes[2]
	d.step("starting three nodes on loopback; snapshot repository file://%s", filepath.Join(d.dir, "repo"))
	d.say("%s", d.mode())
	d.say("snapshot policy: n1 every second (a short interval for the demo), n2 and n3 every 10 minutes")
	for _, n := range d.nodes {
		interval := "10m"
		if n == n1 {
			interval = "1s"
		}
		if err := d.start(ctx, n, demoPolicyArgs(interval)...); err != nil {
			return err
		}
	}

	d.step("n1 is the primary of shard demo/0; n2 becomes its replica by recovering the empty shard")
	if _, err := n1.shard.CreateShard(ctx, &pb.CreateShardRequest{Shard: demoShard}); err != nil {
		return err
	}
	if _, err := d.recover(ctx, n2, n1, nil); err != nil {
		return err
	}
	// The replica's policy takes its snapshot retention lease once it sees
	// the shard (and n1's first snapshot): from then on its op log keeps
	// what a snapshot plus ops will need, whatever --retain-ops says.
	if err := d.until(ctx, "n2's snapshot retention lease is taken", func() (bool, error) {
		pol, err := n2.snap.GetSnapshotPolicy(ctx, &pb.GetSnapshotPolicyRequest{Shard: demoShard})
		return err == nil && len(pol.Shards) == 1 && pol.Shards[0].LeaseRetainingSeqno >= 0, err
	}); err != nil {
		return err
	}

	d.step("writing %d docs of 1 KiB on n1 and replicating them to n2 out of order, with other flush points", d.docs)
	if err := d.writeAndReplicate(ctx, n1, n2); err != nil {
		return err
	}
	if _, err := n2.shard.Merge(ctx, &pb.MergeRequest{Shard: demoShard}); err != nil {
		return err
	}
	f1, err := d.files(n1)
	if err != nil {
		return err
	}
	f2, err := d.files(n2)
	if err != nil {
		return err
	}
	same := 0
	for name := range f1 {
		if _, ok := f2[name]; ok {
			same++
		}
	}
	d.say("n1 holds %d segment files, n2 %d after a merge; %d file names in common: same documents, other files", len(f1), len(f2), same)

	d.step("the snapshot policy snapshots the primary's shard; the replica's snapshot retention lease follows")
	if err := d.scheduledSnapshot(ctx, n1, n2); err != nil {
		return err
	}

	d.step("writes go on after the snapshot: 2000 docs on n1, replicated to n2 (op logs keep 100 ops, and what the lease asks)")
	if err := d.writeMore(ctx, n1, []*demoNode{n2}, 2000, 3); err != nil {
		return err
	}

	d.step("failover: n1 is killed (SIGKILL), n2 is promoted to primary")
	d.stop(n1, true)
	st, err := n2.shard.Promote(ctx, &pb.PromoteRequest{Shard: demoShard})
	if err != nil {
		return err
	}
	d.say("n2 is primary, term %d, max seqno %d", st.Stats.PrimaryTerm, st.Stats.Seqno.MaxSeqno)
	if err := d.writeMore(ctx, n2, nil, 1000, 4); err != nil {
		return err
	}
	d.say("n2 took 1000 more docs as the new primary")

	d.step("n3 joins as a new replica: recovery from n2")
	r3, err := d.recover(ctx, n3, n2, nil)
	if err != nil {
		return err
	}
	fromPeer := r3.GetTotals().GetFromPeer().GetRecoveredBytes()
	d.say("bytes read off the new primary n2: %s (files) of %s in the shard; %d ops above the snapshot replayed from n2", humanBytes(fromPeer),
		humanBytes(r3.GetTotals().GetTotal().GetBytes()), r3.GetOps().GetReplayed())
	if err := checkSnapshotPlusOps(r3); err != nil {
		return err
	}

	d.step("n1 comes back empty; its recovery from n2 starts from the snapshot, which breaks mid-recovery")
	if err := os.RemoveAll(n1.data); err != nil {
		return err
	}
	// A bandwidth budget keeps the download going long enough to break it.
	if err := d.start(ctx, n1, append(demoPolicyArgs("10m"), "--throttle", "25MB", "--max-snapshot-downloads", "2")...); err != nil {
		return err
	}
	r1, err := d.recover(ctx, n1, n2, func(id string) { d.breakSnapshot(ctx, n1, id) })
	if err != nil {
		return err
	}
	if len(r1.Fallbacks) == 0 {
		return errors.New("the snapshot was not broken in time: no fallback happened")
	}

	d.step("verification")
	tw := tabwriter.NewWriter(d.w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "    NODE\tROLE\tDIGEST\tHISTORY UUID\tTERM\tMAX SEQNO\tLOCAL CHECKPOINT\tFILES")
	var want string
	ok := true
	for _, row := range []struct {
		n    *demoNode
		role string
	}{{n2, "primary"}, {n3, "replica (snapshot + ops)"}, {n1, "replica (fallback to peer)"}} {
		dg, err := row.n.shard.Digest(ctx, &pb.DigestRequest{Shard: demoShard})
		if err != nil {
			return err
		}
		stats, err := row.n.shard.Stats(ctx, &pb.StatsRequest{Shard: demoShard})
		if err != nil {
			return err
		}
		if want == "" {
			want = dg.Digest
		}
		ok = ok && dg.Digest == want
		s := stats.Stats
		d.rows = append(d.rows, demoRow{Node: row.n.name, Role: row.role, Digest: dg.Digest, HistoryUUID: dg.HistoryUuid,
			PrimaryTerm: s.PrimaryTerm, MaxSeqNo: s.Seqno.MaxSeqno, LocalCheckpoint: s.Seqno.LocalCheckpoint, Segments: s.Segments})
		fmt.Fprintf(tw, "    %s\t%s\t%.16s…\t%.8s\t%d\t%d\t%d\t%d\n", row.n.name, row.role, dg.Digest, dg.HistoryUuid, s.PrimaryTerm,
			s.Seqno.MaxSeqno, s.Seqno.LocalCheckpoint, s.Segments)
	}
	tw.Flush()
	if !ok {
		return errors.New("a copy differs from the primary")
	}
	fmt.Fprintf(d.w, "\nall three copies are equal: same digest, history UUID and checkpoints (%s, %s)\n", d.modeName(), time.Since(start).Round(100*time.Millisecond))
	d.step("stopping the nodes")
	d.stopAll()
	return nil
}

// writeAndReplicate indexes docs on the primary and applies the ops to the
// replica in shuffled batches; both flush at different points. The primary
// then records the global checkpoint both copies reached.
func (d *demo) writeAndReplicate(ctx context.Context, primary, replica *demoNode) error {
	r := rand.New(rand.NewPCG(1, 2))
	var pending []*pb.Op
	value := make([]byte, 1024)
	const batch = 1000
	for i := 0; i < d.docs; i += batch {
		docs := make([]*pb.Doc, 0, batch)
		for j := i; j < min(i+batch, d.docs); j++ {
			fillValue(value, r, true)
			docs = append(docs, &pb.Doc{Key: fmt.Sprintf("doc-%08d", r.IntN(d.docs*3/4)), Value: append([]byte(nil), value...)})
		}
		resp, err := primary.shard.Index(ctx, &pb.IndexRequest{Shard: demoShard, Docs: docs})
		if err != nil {
			return err
		}
		pending = append(pending, resp.Ops...)
		if (i/batch)%5 == 4 {
			if _, err := primary.shard.Flush(ctx, &pb.FlushRequest{Shard: demoShard}); err != nil {
				return err
			}
		}
		if len(pending) >= 3*batch {
			r.Shuffle(len(pending), func(a, b int) { pending[a], pending[b] = pending[b], pending[a] })
			if err := replicateTo(ctx, primary, replica, pending); err != nil {
				return err
			}
			pending = pending[:0]
			if _, err := replica.shard.Flush(ctx, &pb.FlushRequest{Shard: demoShard}); err != nil {
				return err
			}
		}
	}
	if err := replicateTo(ctx, primary, replica, pending); err != nil {
		return err
	}
	ps, err := primary.shard.Stats(ctx, &pb.StatsRequest{Shard: demoShard})
	if err != nil {
		return err
	}
	rs, err := replica.shard.Stats(ctx, &pb.StatsRequest{Shard: demoShard})
	if err != nil {
		return err
	}
	gcp := min(ps.Stats.Seqno.LocalCheckpoint, rs.Stats.Seqno.LocalCheckpoint)
	for _, n := range []*demoNode{primary, replica} {
		if _, err := n.shard.Flush(ctx, &pb.FlushRequest{Shard: demoShard, GlobalCheckpoint: &gcp}); err != nil {
			return err
		}
	}
	d.say("max seqno %d on both; global checkpoint %d", ps.Stats.Seqno.MaxSeqno, gcp)
	return nil
}

// files lists the segment files of a node's copy, read from its commit
// point (the daemon holds the shard, but the commit is a plain file).
func (d *demo) files(n *demoNode) (map[string]bool, error) {
	md, err := shardstore.ReadMetadata(n.data, shardstore.ShardID{Index: demoShard.Index, Shard: int(demoShard.Shard)})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.name, err)
	}
	out := make(map[string]bool, len(md.Files))
	for _, f := range md.Files {
		out[f.Name] = true
	}
	return out, nil
}

// breakSnapshot waits until the recovery downloads from the snapshot, then
// corrupts in the repository a file it has not downloaded yet.
func (d *demo) breakSnapshot(ctx context.Context, target *demoNode, id string) {
	root := filepath.Join(d.dir, "repo")
	repo, err := snapshot.OpenRepository("file://"+root, snapshot.S3Options{})
	if err != nil {
		return
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := target.rec.GetRecovery(ctx, &pb.GetRecoveryRequest{Id: id})
		if err != nil || resp.Recovery.Stage > pb.Stage_STAGE_FILES {
			return
		}
		rec := resp.Recovery
		if rec.Stage != pb.Stage_STAGE_FILES || rec.GetTotals().GetFromSnapshot().GetRecoveredBytes() == 0 {
			continue
		}
		man, err := snapshot.Read(ctx, repo, shardstore.ShardID{Index: demoShard.Index, Shard: int(demoShard.Shard)}, rec.Plan.SnapshotId)
		if err != nil {
			return
		}
		for _, f := range rec.Files {
			if f.Source != pb.FileSource_FILE_SOURCE_SNAPSHOT || f.RecoveredBytes > 0 {
				continue
			}
			entry, ok := man.Lookup(f.Name)
			if !ok {
				continue
			}
			layout, err := snapshot.LayoutOf(ctx, repo)
			if err != nil {
				return
			}
			path := filepath.Join(root, filepath.FromSlash(snapshot.ObjectKey(layout, entry.Blob)))
			fh, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				continue
			}
			fh.WriteAt([]byte("broken!"), entry.Length/2)
			fh.Close()
			d.say("[demo] corrupted blob of %s in the repository while the recovery downloads", f.Name)
			return
		}
	}
}

// replicateTo is the demo's replication: it applies the primary's ops to
// the replica, then acknowledges the replica's local checkpoint to the
// primary (ShardService.AckReplica), which renews the replica's retention
// lease there (the recovery handed its lease over to it) so that a replica
// that restarts within --copy-retention recovers by ops alone.
func replicateTo(ctx context.Context, primary, replica *demoNode, ops []*pb.Op) error {
	resp, err := replica.shard.Apply(ctx, &pb.ApplyRequest{Shard: demoShard, Ops: ops})
	if err != nil {
		return err
	}
	_, err = primary.shard.AckReplica(ctx, &pb.AckReplicaRequest{Shard: demoShard, Copy: replica.name, LocalCheckpoint: resp.Seqno.GetLocalCheckpoint()})
	if err != nil {
		return fmt.Errorf("acknowledge %s's checkpoint to %s: %w", replica.name, primary.name, err)
	}
	return nil
}
