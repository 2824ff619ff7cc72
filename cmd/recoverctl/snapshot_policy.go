package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
)

// snapshot policy: the one snapshot command that asks a daemon, since the
// policy runs in it.

func newSnapshotPolicyCmd(g *globalFlags) *cobra.Command {
	var (
		cf    connFlags
		shard string
	)
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Show a node's snapshot policy and, per shard, its last snapshot, its age, the next run and the snapshot retention lease (asks the daemon)",
		Example: `  recoverctl snapshot policy --addr 127.0.0.1:7400 --insecure
  recoverctl snapshot policy --addr 127.0.0.1:7400 --insecure --shard logs/0 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &pb.GetSnapshotPolicyRequest{}
			if shard != "" {
				id, err := parseShard(shard)
				if err != nil {
					return err
				}
				req.Shard = id
			}
			conn, err := cf.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			resp, err := pb.NewSnapshotServiceClient(conn).GetSnapshotPolicy(cmd.Context(), req)
			if err != nil {
				return rpcError(err)
			}
			return emitProto(cmd, g, resp, func(w io.Writer) { printPolicy(w, resp, time.Now()) })
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&shard, "shard", "", "only this shard (index/number)")
	return cmd
}

func printPolicy(w io.Writer, resp *pb.GetSnapshotPolicyResponse, now time.Time) {
	p := resp.Policy
	fmt.Fprintf(w, "policy: every %v (jitter %.0f%%), scope %s, keep %s, max age %s, %d uploads at once, lease bound %s ops / %s\n",
		p.Interval.AsDuration(), 100*p.Jitter, p.Scope, orNone(int64(p.Keep)), orNoneDur(p.MaxAge.AsDuration()), p.MaxUploads,
		orNone(p.LeaseMaxOps), leaseBytes(p.LeaseMaxBytes))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SHARD\tROLE\tLAST SNAPSHOT\tAGE\tNEXT RUN\tLAST RESULT\tFAILURES\tLEASE FROM\tNOTE")
	for _, s := range resp.Shards {
		role := "replica"
		if s.Primary {
			role = "primary"
		}
		last, age := "-", "-"
		if s.LastSnapshotId != "" {
			last, age = s.LastSnapshotId, s.Age.AsDuration().Round(time.Second).String()
		}
		next := "-"
		switch {
		case s.Running:
			next = "running"
		case s.NextRun != nil:
			next = "in " + max(pbconv.TimeFromPB(s.NextRun).Sub(now), 0).Round(time.Second).String()
		}
		lease := "-"
		if s.LeaseRetainingSeqno >= 0 {
			lease = fmt.Sprint(s.LeaseRetainingSeqno)
		}
		note := s.LeaseBound
		if s.LastError != "" {
			note = s.LastError
		}
		result := s.LastResult
		if result == "" {
			result = "-"
		}
		fmt.Fprintf(tw, "%s/%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", s.Shard.GetIndex(), s.Shard.GetShard(), role, last, age, next, result, s.Failures, lease, note)
	}
	tw.Flush()
}

func orNone(n int64) string {
	if n == 0 {
		return "none"
	}
	return fmt.Sprint(n)
}

func leaseBytes(n int64) string {
	if n == 0 {
		return "no bytes bound"
	}
	return humanBytes(n)
}

func orNoneDur(d time.Duration) string {
	if d == 0 {
		return "none"
	}
	return d.String()
}
