package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
)

func newWatchCmd(g *globalFlags) *cobra.Command {
	var cf connFlags
	var wf watchFlags
	cmd := &cobra.Command{
		Use:   "watch ID",
		Short: "Follow a recovery's progress until it ends",
		Long: `watch follows a recovery until it ends; the exit code says how it ended
(0 done, 1 failed, 3 cancelled). When the daemon restarts meanwhile, the
recovery resumes there under the same id, and watch reconnects and goes on
(for at most --reconnect).`,
		Example: `  recoverctl watch r-20261123T184500-1a2b3c4d --insecure`,
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, closeConn, err := cf.recoveryClient()
			if err != nil {
				return err
			}
			defer closeConn()
			return watch(cmd, g, c, args[0], wf)
		},
	}
	cf.register(cmd)
	wf.register(cmd)
	return cmd
}

// watchFlags tune watch (recoverctl watch, recover --wait).
type watchFlags struct {
	interval, reconnect time.Duration
}

func (w *watchFlags) register(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&w.interval, "interval", 500*time.Millisecond, "progress refresh interval")
	cmd.Flags().DurationVar(&w.reconnect, "reconnect", 2*time.Minute,
		"how long to keep reconnecting when the daemon stops or restarts meanwhile (the recovery resumes there); 0: give up at once")
}

// watch follows a recovery: bars on a terminal, a line every few seconds
// otherwise, the final state as JSON with -o json. The exit code says how
// it ended. A daemon that stops (its node restarting) ends the stream with
// Unavailable: watch reconnects, for up to wf.reconnect, and follows the
// recovery it resumed under the same id.
func watch(cmd *cobra.Command, g *globalFlags, c pb.RecoveryServiceClient, id string, wf watchFlags) error {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	out := cmd.OutOrStdout()
	var view progressView
	switch {
	case g.output == "json":
		view = nopView{}
	case isTerminal(out):
		view = newBarView(out)
	default:
		view = &lineView{w: out}
	}
	var last *pb.Recovery
	planShown := false
	var lost time.Time // when the daemon went away; zero while connected
	for done := false; !done; {
		stream, err := c.WatchRecovery(ctx, &pb.WatchRecoveryRequest{Id: id, MinInterval: durationpb.New(wf.interval)})
		for err == nil {
			var resp *pb.WatchRecoveryResponse
			if resp, err = stream.Recv(); err == io.EOF {
				done = true
				break
			}
			if err != nil {
				break
			}
			if !lost.IsZero() {
				fmt.Fprintf(cmd.ErrOrStderr(), "reconnected; recovery %s goes on (restarts: %d)\n", id, resp.Recovery.GetRestarts())
				lost = time.Time{}
			}
			last = resp.Recovery
			// The plan and its reasons come first, once known.
			if g.output == "text" && !planShown && (last.Plan != nil || last.Stage >= pb.Stage_STAGE_DONE) {
				printHeader(out, last)
				planShown = true
			}
			view.update(last)
		}
		if done {
			break
		}
		if status.Code(err) != codes.Unavailable || ctx.Err() != nil || last == nil {
			view.close()
			return rpcError(err)
		}
		if lost.IsZero() {
			lost = time.Now()
			fmt.Fprintf(cmd.ErrOrStderr(), "the daemon went away (%s); reconnecting for up to %v\n", status.Convert(err).Message(), wf.reconnect)
		}
		if time.Since(lost) >= wf.reconnect {
			view.close()
			return rpcError(err)
		}
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
			view.close()
			return rpcError(err)
		}
	}
	view.close()
	if last == nil {
		return fmt.Errorf("the daemon ended the watch without a state")
	}
	if err := emitProto(cmd, g, last, func(w io.Writer) { printSummary(w, last) }); err != nil {
		return err
	}
	switch last.Stage {
	case pb.Stage_STAGE_DONE:
		return nil
	case pb.Stage_STAGE_CANCELLED:
		return exitError{exitCancelled, fmt.Errorf("recovery %s cancelled: %s", last.Id, last.Error)}
	}
	return exitError{exitFailed, fmt.Errorf("recovery %s failed: %s", last.Id, last.Error)}
}
