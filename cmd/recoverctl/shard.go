package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/recoverd/recoverd/shardstore"
)

type shardFlags struct {
	data, index string
	shard       int
}

func (f *shardFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.data, "data", "", "data directory of the node (required)")
	cmd.Flags().StringVar(&f.index, "index", "", "index name (required)")
	cmd.Flags().IntVar(&f.shard, "shard", 0, "shard number")
	markRequired(cmd, "data", "index")
}

func (f *shardFlags) id() (shardstore.ShardID, error) {
	id := shardstore.ShardID{Index: f.index, Shard: f.shard}
	if err := id.Validate(); err != nil {
		return id, usageError{err}
	}
	return id, nil
}

func newShardCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "shard", Short: "Inspect shards on disk (offline: the daemon must not hold the shard)"}
	var sf shardFlags
	stats := &cobra.Command{
		Use:     "stats",
		Short:   "Print a shard's commit user data, files and content digest",
		Example: `  recoverctl shard stats --data /tmp/n1 --index logs --shard 0`,
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := sf.id()
			if err != nil {
				return err
			}
			s, err := shardstore.Open(sf.data, id, shardstore.Options{})
			if err != nil {
				return err
			}
			defer s.Close()
			digest, err := s.Digest(cmd.Context())
			if err != nil {
				return err
			}
			out := struct {
				Stats    shardstore.Stats    `json:"stats"`
				Metadata shardstore.Metadata `json:"metadata"`
				Digest   string              `json:"digest"`
			}{s.Stats(), s.Metadata(), digest}
			return emit(cmd, g, out, func(w io.Writer) { printShard(w, out.Metadata, out.Stats, digest) })
		},
	}
	sf.register(stats)
	cmd.AddCommand(stats)
	return cmd
}

func printShard(w io.Writer, md shardstore.Metadata, st shardstore.Stats, digest string) {
	c := md.Commit
	fmt.Fprintf(w, "shard              %s\n", st.ID)
	fmt.Fprintf(w, "history uuid       %s\n", c.HistoryUUID)
	fmt.Fprintf(w, "primary term       %d\n", c.PrimaryTerm)
	fmt.Fprintf(w, "commit generation  %d\n", md.Generation)
	fmt.Fprintf(w, "max seqno          %v (live %v)\n", c.MaxSeqNo, st.Seq.MaxSeqNo)
	fmt.Fprintf(w, "local checkpoint   %v (live %v)\n", c.LocalCheckpoint, st.Seq.LocalCheckpoint)
	fmt.Fprintf(w, "global checkpoint  %s\n", globalCheckpointLine(c))
	fmt.Fprintf(w, "min retained seqno %v\n", c.MinRetainedSeqNo)
	fmt.Fprintf(w, "writer version     %s (format %d)\n", c.WriterVersion, c.FormatVersion)
	fmt.Fprintf(w, "digest             %s\n", digest)
	fmt.Fprintf(w, "files              %d (%s)\n", len(md.Files), humanBytes(md.TotalBytes()))
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tLENGTH\tCRC32C\tWRITER")
	for _, f := range md.Files {
		fmt.Fprintf(tw, "  %s\t%d\t%08x\t%s\n", f.Name, f.Length, f.CRC32C, f.WriterUUID)
	}
	tw.Flush()
}

// globalCheckpointLine shows a commit's global checkpoint and the newest
// term of the ops it holds above it.
func globalCheckpointLine(c shardstore.CommitData) string {
	if c.MaxSeqNo <= c.GlobalCheckpoint {
		return c.GlobalCheckpoint.String()
	}
	return fmt.Sprintf("%v (ops %v..%v above it, of terms up to %d)", c.GlobalCheckpoint, c.GlobalCheckpoint+1, c.MaxSeqNo, c.MaxTermAboveGlobalCheckpoint)
}
