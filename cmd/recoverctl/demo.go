package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

func newDemoCmd(g *globalFlags) *cobra.Command {
	var dir string
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the shard-level flow end to end on a temporary directory",
		Long: `demo writes a primary shard, replicates its ops out of order onto a replica
with different flush and merge points (same logical content, different
physical files: what a failover leaves), crashes a writer with SIGKILL and
reopens it, then copies the primary's files into a fresh target through
staging, publishes them with one commit, replays the missing ops and
verifies the copy.`,
		Example: `  recoverctl demo
  recoverctl demo --dir /tmp/recoverd-demo --keep`,
		RunE: func(cmd *cobra.Command, args []string) error {
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
			return runShardDemo(cmd.Context(), cmd.OutOrStdout(), dir)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "work directory (default: a temporary one)")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the work directory")
	return cmd
}

func runShardDemo(ctx context.Context, w io.Writer, dir string) error {
	step := func(format string, args ...any) { fmt.Fprintf(w, "==> "+format+"\n", args...) }
	id := shardstore.ShardID{Index: "demo", Shard: 0}
	nodes := map[string]string{}
	for _, n := range []string{"primary", "replica", "crashy", "target"} {
		nodes[n] = filepath.Join(dir, n)
	}

	step("writing 20,000 docs on the primary (a segment every 4,000)")
	primary, err := shardstore.Open(nodes["primary"], id, shardstore.Options{Create: true, RetainOps: 100_000})
	if err != nil {
		return err
	}
	defer primary.Close()
	// The replica starts as a copy of the still empty primary, so it shares
	// its history UUID.
	replica, err := shardstore.Open(nodes["replica"], id, shardstore.Options{Create: true})
	if err != nil {
		return err
	}
	defer replica.Close()
	if _, _, err := localFileRecovery(ctx, primary, replica); err != nil {
		return err
	}
	if _, err := generate(ctx, primary, genSpec{docs: 20000, docSize: 512, flushEvery: 4000, batch: 500, seed: 1, keySpace: 15000, deleteEvery: 100}); err != nil {
		return err
	}
	if err := primary.Flush(); err != nil {
		return err
	}
	// Ops above the last commit: a file copy must replay them.
	if _, err := primary.IndexBatch(ctx, []shardstore.Doc{{Key: "late-1", Value: []byte("written after the commit")}, {Key: "late-2", Value: []byte("x")}}); err != nil {
		return err
	}

	step("replicating the ops onto a replica, shuffled, with other flush points and a merge")
	var ops []shardstore.Op
	if err := primary.ReadOps(primary.RetainedOps(), func(op shardstore.Op) error { ops = append(ops, op); return nil }); err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(2, 2))
	r.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
	for i := 0; i < len(ops); i += 700 {
		if err := replica.Apply(ctx, ops[i:min(i+700, len(ops))]); err != nil {
			return err
		}
		if i%2100 == 0 {
			if err := replica.Flush(); err != nil {
				return err
			}
		}
	}
	if err := replica.Merge(); err != nil {
		return err
	}
	d := shardstore.Diff(primary.Metadata(), replica.Metadata())
	fmt.Fprintf(w, "    primary %d files, replica %d files: %d identical, %d different, %d missing on the replica\n",
		len(primary.Metadata().Files), len(replica.Metadata().Files), len(d.Identical), len(d.Different), len(d.Missing))

	step("killing a writer with SIGKILL mid-stream and reopening its shard")
	crashStats, err := crashAndReopen(nodes["crashy"], id)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "    reopened after the crash at %v, %d segments\n", crashStats.Seq, crashStats.Segments)

	step("recovering a fresh target from the primary: stage files, publish one commit, replay ops")
	target, err := shardstore.Open(nodes["target"], id, shardstore.Options{Create: true})
	if err != nil {
		return err
	}
	defer target.Close()
	copied, replayed, err := localFileRecovery(ctx, primary, target)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "    copied %s in %d files, replayed %d ops\n", humanBytes(copied), len(target.Metadata().Files), replayed)

	step("verification")
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "COPY\tDIGEST\tHISTORY UUID\tMAX SEQNO\tLOCAL CHECKPOINT\tFILES")
	want, _ := primary.Digest()
	ok := true
	for _, c := range []struct {
		name string
		s    *shardstore.Shard
	}{{"primary", primary}, {"replica", replica}, {"target", target}} {
		dg, err := c.s.Digest()
		if err != nil {
			return err
		}
		st := c.s.Stats()
		fmt.Fprintf(tw, "%s\t%s…\t%s\t%v\t%v\t%d\n", c.name, dg[:16], st.HistoryUUID[:8], st.Seq.MaxSeqNo, st.Seq.LocalCheckpoint, len(c.s.Metadata().Files))
		if c.name != "primary" && dg != want {
			ok = false
		}
	}
	tw.Flush()
	if !ok {
		return fmt.Errorf("a copy differs from the primary")
	}
	fmt.Fprintln(w, "replica and target equal the primary: same digest, history UUID and checkpoints")
	return nil
}

// crashAndReopen runs `recoverctl gen` in a child process, kills it with
// SIGKILL while it writes, and reopens the shard it left.
func crashAndReopen(dataDir string, id shardstore.ShardID) (shardstore.Stats, error) {
	self, err := os.Executable()
	if err != nil {
		return shardstore.Stats{}, err
	}
	child := exec.Command(self, "gen", "--data", dataDir, "--index", id.Index, "--docs", "5000000", "--doc-size", "256", "--flush-every", "20000", "--batch", "100")
	if err := child.Start(); err != nil {
		return shardstore.Stats{}, err
	}
	time.Sleep(700 * time.Millisecond)
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	s, err := shardstore.Open(dataDir, id, shardstore.Options{})
	if err != nil {
		return shardstore.Stats{}, fmt.Errorf("reopen after crash: %w", err)
	}
	defer s.Close()
	return s.Stats(), nil
}

// localFileRecovery is the shape of a peer recovery without the network:
// pin the source commit, stage its files on the target, publish them, then
// replay the ops above the commit's checkpoint.
func localFileRecovery(ctx context.Context, src, dst *shardstore.Shard) (copied int64, replayed int, err error) {
	ref, err := src.AcquireCommit()
	if err != nil {
		return 0, 0, err
	}
	defer ref.Release()
	st, err := dst.StartStaging("demo-recovery")
	if err != nil {
		return 0, 0, err
	}
	defer st.Abandon()
	md := ref.Metadata()
	for _, fm := range md.Files {
		f, _, err := ref.Open(fm.Name)
		if err != nil {
			return 0, 0, err
		}
		sf, err := st.CreateFile(fm)
		if err != nil {
			f.Close()
			return 0, 0, err
		}
		n, err := io.Copy(io.NewOffsetWriter(sf, 0), f)
		f.Close()
		if err == nil {
			err = sf.Verify()
		}
		sf.Close()
		if err != nil {
			return 0, 0, err
		}
		copied += n
	}
	if err := st.Publish(md.Files, md.Commit); err != nil {
		return 0, 0, err
	}
	var ops []shardstore.Op
	rng := seqno.Range{From: md.Commit.LocalCheckpoint + 1, To: src.Stats().Seq.MaxSeqNo}
	if err := src.ReadOps(rng, func(op shardstore.Op) error { ops = append(ops, op); return nil }); err != nil {
		return 0, 0, err
	}
	return copied, len(ops), dst.Apply(ctx, ops)
}
