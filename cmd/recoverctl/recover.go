package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/shardstore"
)

func emitProto(cmd *cobra.Command, g *globalFlags, m proto.Message, text func(w io.Writer)) error {
	if g.output == "json" {
		b, err := protojson.MarshalOptions{Multiline: true, EmitUnpopulated: false}.Marshal(m)
		if err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), string(b))
		return nil
	}
	text(cmd.OutOrStdout())
	return nil
}

func parseShard(s string) (*pb.ShardId, error) {
	id, err := shardstore.ParseShardID(s)
	if err != nil {
		return nil, usagef("--shard %q: %v (want index/number, e.g. logs/0)", s, err)
	}
	return pbconv.ShardID(id), nil
}

func newRecoverCmd(g *globalFlags) *cobra.Command {
	var (
		cf                 connFlags
		shard, source, id  string
		wait, dry, noSnaps bool
		allowDataLoss      bool
		wf                 watchFlags
	)
	cmd := &cobra.Command{
		Use:   "recover",
		Short: "Start a recovery of a shard onto the daemon's node (and with --wait, watch it to the end)",
		Long: `recover asks the daemon at --addr (the target node) to recover a shard from
the source node's peer address. The plan and its reasons are printed first;
with --wait, progress follows until the recovery ends, and the exit code
says how it ended (0 done, 1 failed, 3 cancelled).`,
		Example: `  recoverctl recover --addr 127.0.0.1:7410 --insecure --shard logs/0 --source 127.0.0.1:7401 --wait
  recoverctl recover --shard logs/0 --source node1:7401 --no-snapshots --tls-ca ca.pem --token-file token
  recoverctl recover --shard logs/0 --source node1:7401 --dry-run -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			sid, err := parseShard(shard)
			if err != nil {
				return err
			}
			c, closeConn, err := cf.recoveryClient()
			if err != nil {
				return err
			}
			defer closeConn()
			req := &pb.StartRecoveryRequest{Shard: sid, SourceAddress: source, RecoveryId: id, Options: &pb.RecoveryOptions{DryRun: dry, AllowDataLoss: allowDataLoss}}
			if cmd.Flags().Changed("no-snapshots") {
				use := !noSnaps
				req.Options.UseSnapshots = &use
			}
			resp, err := c.StartRecovery(cmd.Context(), req)
			if err != nil {
				return rpcError(err)
			}
			rec := resp.Recovery
			if !wait || dry {
				return emitProto(cmd, g, rec, func(w io.Writer) {
					printHeader(w, rec)
					if dry {
						fmt.Fprintln(w, "dry run: nothing was moved")
					} else {
						fmt.Fprintf(w, "started; follow it with: recoverctl watch %s\n", rec.Id)
					}
				})
			}
			return watch(cmd, g, c, rec.Id, wf)
		},
	}
	cf.register(cmd)
	f := cmd.Flags()
	f.StringVar(&shard, "shard", "", "shard to recover: index/number (required)")
	f.StringVar(&source, "source", "", "peer address host:port of the source node (required)")
	f.StringVar(&id, "id", "", "recovery id (default: the daemon picks one)")
	f.BoolVar(&wait, "wait", false, "watch the recovery until it ends")
	f.BoolVar(&dry, "dry-run", false, "plan only")
	f.BoolVar(&noSnaps, "no-snapshots", false, "do not use snapshots for this recovery (default: the node's setting)")
	f.BoolVar(&allowDataLoss, "allow-data-loss", false, "overwrite a target that holds ops past the source's max seqno (they are lost); without it such a recovery is refused")
	wf.register(cmd)
	markRequired(cmd, "shard", "source")
	return cmd
}

func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s takes %d argument(s), got %d (see --help)", cmd.CommandPath(), n, len(args))
		}
		return nil
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

type progressView interface {
	update(*pb.Recovery)
	close()
}

type nopView struct{}

func (nopView) update(*pb.Recovery) {}
func (nopView) close()              {}

// lineView prints a progress line at most every 2 seconds and at every
// stage change (for logs and pipes).
type lineView struct {
	w     io.Writer
	last  time.Time
	stage pb.Stage
}

func (v *lineView) update(r *pb.Recovery) {
	if r.Stage == v.stage && time.Since(v.last) < 2*time.Second {
		return
	}
	v.stage, v.last = r.Stage, time.Now()
	t := r.GetTotals().GetTotal()
	fmt.Fprintf(v.w, "%-9s files %d/%d  %s/%s (%s)  ops %d/%d  %s\n", stageName(r.Stage), t.GetRecoveredFiles(), t.GetFiles(),
		humanBytes(t.GetRecoveredBytes()), humanBytes(t.GetBytes()), percent(t.GetRecoveredBytes(), t.GetBytes()),
		r.GetOps().GetReplayed(), r.GetOps().GetTotal(), rate(r))
}

func (v *lineView) close() {}

// barView draws a bar for the whole recovery and one per file in flight.
type barView struct {
	p     *mpb.Progress
	total *mpb.Bar
	files map[string]*mpb.Bar
}

func newBarView(w io.Writer) *barView {
	return &barView{p: mpb.New(mpb.WithOutput(w), mpb.WithWidth(40), mpb.WithRefreshRate(200*time.Millisecond)), files: map[string]*mpb.Bar{}}
}

func (v *barView) update(r *pb.Recovery) {
	t := r.GetTotals().GetTotal()
	if v.total == nil && t.GetBytes() > 0 {
		v.total = v.p.New(t.GetBytes(), mpb.BarStyle(),
			mpb.PrependDecorators(decor.Name("recovery ", decor.WCSyncSpaceR), decor.CountersKibiByte("% .1f / % .1f")),
			mpb.AppendDecorators(decor.AverageSpeed(decor.SizeB1024(0), "% .1f"), decor.Name(" ETA "), decor.AverageETA(decor.ET_STYLE_GO)))
	}
	if v.total != nil {
		v.total.SetCurrent(t.GetRecoveredBytes())
	}
	for _, f := range r.Files {
		if f.Source == pb.FileSource_FILE_SOURCE_REUSED {
			continue
		}
		b, ok := v.files[f.Name]
		if !ok {
			if f.RecoveredBytes == 0 || f.Done {
				continue
			}
			src := "peer"
			if f.Source == pb.FileSource_FILE_SOURCE_SNAPSHOT {
				src = "snap"
			}
			b = v.p.New(f.Length, mpb.BarStyle(), mpb.BarRemoveOnComplete(),
				mpb.PrependDecorators(decor.Name(fmt.Sprintf("  %-4s %s ", src, f.Name), decor.WCSyncSpaceR), decor.Percentage()),
				mpb.AppendDecorators(decor.AverageSpeed(decor.SizeB1024(0), "% .1f")))
			v.files[f.Name] = b
		}
		if f.Done {
			b.SetCurrent(f.Length)
		} else {
			b.SetCurrent(f.RecoveredBytes)
		}
	}
	if r.Stage == pb.Stage_STAGE_DONE && v.total != nil {
		v.total.SetCurrent(t.GetBytes())
	}
}

func (v *barView) close() {
	for _, b := range v.files {
		b.Abort(true)
	}
	if v.total != nil && !v.total.Completed() {
		v.total.Abort(false)
	}
	v.p.Wait()
}

func stageName(s pb.Stage) string { return strings.ToLower(strings.TrimPrefix(s.String(), "STAGE_")) }
func kindName(k pb.PlanKind) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(k.String(), "PLAN_KIND_")), "_", "-")
}

func percent(a, b int64) string {
	if b == 0 {
		return "100%"
	}
	return fmt.Sprintf("%.0f%%", 100*float64(a)/float64(b))
}

func elapsed(r *pb.Recovery) time.Duration {
	end := time.Now()
	if r.EndTime != nil {
		end = r.EndTime.AsTime()
	}
	return end.Sub(r.StartTime.AsTime())
}

func rate(r *pb.Recovery) string {
	d := elapsed(r).Seconds()
	if d <= 0 {
		return ""
	}
	return humanBytes(int64(float64(r.GetTotals().GetTotal().GetRecoveredBytes()-r.GetTotals().GetReused().GetRecoveredBytes())/d)) + "/s"
}

// printHeader shows the plan and its reasons.
func printHeader(w io.Writer, r *pb.Recovery) {
	sh, _ := pbconv.ShardIDFromPB(r.Shard)
	fmt.Fprintf(w, "recovery %s of %s from %s onto %s\n", r.Id, sh, r.SourceAddress, r.TargetNode)
	if r.Plan == nil {
		fmt.Fprintf(w, "stage %s (not planned yet)\n", stageName(r.Stage))
		return
	}
	printPlan(w, r.Plan, "")
}

func printPlan(w io.Writer, p *pb.Plan, indent string) {
	e := p.GetEstimate()
	line := fmt.Sprintf("%splan: %s", indent, kindName(p.Kind))
	if p.SnapshotId != "" {
		line += " with snapshot " + p.SnapshotId
	}
	ops := "no ops to replay"
	if from, to := p.GetOps().GetFrom(), p.GetOps().GetTo(); from <= to {
		ops = fmt.Sprintf("ops %d..%d", from, to)
	}
	fmt.Fprintf(w, "%s: %d reused (%s), %d from snapshot (%s), %d from peer (%s); %s\n", line,
		len(p.Reused), humanBytes(e.GetBytesReused()), len(p.FromSnapshot), humanBytes(e.GetBytesFromRepo()),
		len(p.FromPeer), humanBytes(e.GetBytesFromPeer()), ops)
	for _, r := range p.Reasons {
		fmt.Fprintf(w, "%s  - %s\n", indent, r)
	}
	if p.Fallback != nil {
		fmt.Fprintf(w, "%sfallback:\n", indent)
		printPlan(w, p.Fallback, indent+"  ")
	}
}

func printSummary(w io.Writer, r *pb.Recovery) {
	t := r.GetTotals()
	fmt.Fprintf(w, "%s in %s: %s from peer, %s from snapshot, %s reused; %d ops replayed; %d resumes, %d re-plans, throttled %s\n",
		stageName(r.Stage), elapsed(r).Round(time.Millisecond), humanBytes(t.GetFromPeer().GetRecoveredBytes()),
		humanBytes(t.GetFromSnapshot().GetRecoveredBytes()), humanBytes(t.GetReused().GetBytes()), r.GetOps().GetReplayed(),
		r.Resumes, r.Replans, r.GetThrottleWait().AsDuration().Round(time.Millisecond))
	for _, f := range r.Fallbacks {
		fmt.Fprintf(w, "fallback %s -> %s: %s\n", kindName(f.FromKind), kindName(f.ToKind), f.Cause)
	}
	if c := r.Result; c != nil {
		if c.Method != "" {
			fmt.Fprintf(w, "check (%s): %s\n", c.Method, c.Detail)
		} else {
			fmt.Fprintf(w, "check: %s\n", c.Detail)
		}
	}
	if r.Error != "" {
		fmt.Fprintf(w, "error: %s\n", r.Error)
	}
}

func newStatusCmd(g *globalFlags) *cobra.Command {
	var cf connFlags
	cmd := &cobra.Command{
		Use:   "status [ID]",
		Short: "Show one recovery in detail, or a table of the node's recoveries",
		Example: `  recoverctl status --insecure            # table, like _cat/recovery
  recoverctl status r-20261123T184500-1a2b3c4d -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("status takes at most one recovery id")
			}
			c, closeConn, err := cf.recoveryClient()
			if err != nil {
				return err
			}
			defer closeConn()
			if len(args) == 0 {
				return listRecoveries(cmd, g, c, false)
			}
			resp, err := c.GetRecovery(cmd.Context(), &pb.GetRecoveryRequest{Id: args[0]})
			if err != nil {
				return rpcError(err)
			}
			r := resp.Recovery
			return emitProto(cmd, g, r, func(w io.Writer) {
				printHeader(w, r)
				fmt.Fprintf(w, "stage %s\n", stageName(r.Stage))
				tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
				fmt.Fprintln(tw, "FILE\tSOURCE\tLENGTH\tRECOVERED\tDONE")
				files := append([]*pb.FileProgress(nil), r.Files...)
				sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
				for _, f := range files {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\n", f.Name, strings.ToLower(strings.TrimPrefix(f.Source.String(), "FILE_SOURCE_")),
						humanBytes(f.Length), percent(f.RecoveredBytes, f.Length), f.Done)
				}
				tw.Flush()
				printSummary(w, r)
			})
		},
	}
	cf.register(cmd)
	return cmd
}

func newListCmd(g *globalFlags) *cobra.Command {
	var cf connFlags
	var active bool
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "Table of the node's recoveries, newest first",
		Example: `  recoverctl list --insecure --active`,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, closeConn, err := cf.recoveryClient()
			if err != nil {
				return err
			}
			defer closeConn()
			return listRecoveries(cmd, g, c, active)
		},
	}
	cf.register(cmd)
	cmd.Flags().BoolVar(&active, "active", false, "only recoveries not finished")
	return cmd
}

func listRecoveries(cmd *cobra.Command, g *globalFlags, c pb.RecoveryServiceClient, active bool) error {
	resp, err := c.ListRecoveries(cmd.Context(), &pb.ListRecoveriesRequest{ActiveOnly: active})
	if err != nil {
		return rpcError(err)
	}
	return emitProto(cmd, g, resp, func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSHARD\tSTAGE\tKIND\tSOURCE\tFILES\tBYTES\tFROM_PEER\tFROM_SNAPSHOT\tREUSED\tOPS\tTIME")
		for _, r := range resp.Recoveries {
			sh, _ := pbconv.ShardIDFromPB(r.Shard)
			t := r.GetTotals()
			kind := "-"
			if r.Plan != nil {
				kind = kindName(r.Plan.Kind)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\t%d/%d\t%s\n", r.Id, sh, stageName(r.Stage), kind, r.SourceAddress,
				t.GetTotal().GetRecoveredFiles(), t.GetTotal().GetFiles(), percent(t.GetTotal().GetRecoveredBytes(), t.GetTotal().GetBytes()),
				humanBytes(t.GetFromPeer().GetRecoveredBytes()), humanBytes(t.GetFromSnapshot().GetRecoveredBytes()), humanBytes(t.GetReused().GetBytes()),
				r.GetOps().GetReplayed(), r.GetOps().GetTotal(), elapsed(r).Round(time.Millisecond))
		}
		tw.Flush()
	})
}

func newCancelCmd(g *globalFlags) *cobra.Command {
	var cf connFlags
	var reason string
	cmd := &cobra.Command{
		Use:     "cancel ID",
		Short:   "Cancel a recovery: no fallback runs, its staging is removed",
		Example: `  recoverctl cancel r-20261123T184500-1a2b3c4d --reason "wrong source" --insecure`,
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, closeConn, err := cf.recoveryClient()
			if err != nil {
				return err
			}
			defer closeConn()
			resp, err := c.CancelRecovery(cmd.Context(), &pb.CancelRecoveryRequest{Id: args[0], Reason: reason})
			if err != nil {
				return rpcError(err)
			}
			return emitProto(cmd, g, resp.Recovery, func(w io.Writer) { printSummary(w, resp.Recovery) })
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "recorded in the recovery's error")
	return cmd
}

func newExplainCmd(g *globalFlags) *cobra.Command {
	var cf connFlags
	var shard, source string
	var noSnaps, allowDataLoss bool
	cmd := &cobra.Command{
		Use:   "explain",
		Short: "Ask the daemon which plan a recovery would run now, and why",
		Example: `  recoverctl explain --shard logs/0 --source 127.0.0.1:7401 --insecure
  recoverctl plan --explain ...   # the same offline, from shard directories`,
		RunE: func(cmd *cobra.Command, args []string) error {
			sid, err := parseShard(shard)
			if err != nil {
				return err
			}
			c, closeConn, err := cf.recoveryClient()
			if err != nil {
				return err
			}
			defer closeConn()
			req := &pb.ExplainPlanRequest{Shard: sid, SourceAddress: source, Options: &pb.RecoveryOptions{AllowDataLoss: allowDataLoss}}
			if cmd.Flags().Changed("no-snapshots") {
				use := !noSnaps
				req.Options.UseSnapshots = &use
			}
			resp, err := c.ExplainPlan(cmd.Context(), req)
			if err != nil {
				return rpcError(err)
			}
			return emitProto(cmd, g, resp.Plan, func(w io.Writer) { printPlan(w, resp.Plan, "") })
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&shard, "shard", "", "index/number (required)")
	cmd.Flags().StringVar(&source, "source", "", "source node's peer address (required)")
	cmd.Flags().BoolVar(&noSnaps, "no-snapshots", false, "plan without snapshots")
	cmd.Flags().BoolVar(&allowDataLoss, "allow-data-loss", false, "plan as a recovery that may overwrite a target ahead of its source")
	markRequired(cmd, "shard", "source")
	return cmd
}
