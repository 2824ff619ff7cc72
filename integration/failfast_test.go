package integration

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/internal/testutil"
)

// Fail fast on what cannot work: a recovery or a plan asked of a source
// that refuses connections, or of a source address that is not an
// address, is refused at once with the code that says so, and nothing is
// registered or created on the node.

// TestStartRecoveryFailsFastOnBadSource: a closed loopback port answers
// Unavailable with the dial error (it was OK/QUEUED, then failed once the
// retry budget had passed); an address that is not host:port answers
// InvalidArgument; ExplainPlan answers the same (it was FailedPrecondition
// after the budget).
func TestStartRecoveryFailsFastOnBadSource(t *testing.T) {
	n := wrap(testutil.StartNode(t, testutil.NodeOptions{Name: "n1", Args: []string{"--retry-budget", "3s"}}))
	closed := testutil.FreeAddr(t) // nothing listens there: connections are refused
	ctx := ctxT(t)

	_, err := n.rec.StartRecovery(ctx, &pb.StartRecoveryRequest{Shard: shardID, SourceAddress: closed})
	requireStatus(t, "StartRecovery from a closed port", err, codes.Unavailable, closed, "connection refused", "nothing was started")
	_, err = n.rec.StartRecovery(ctx, &pb.StartRecoveryRequest{Shard: shardID, SourceAddress: closed,
		Options: &pb.RecoveryOptions{DryRun: true}})
	requireStatus(t, "a dry run from a closed port", err, codes.Unavailable, "connection refused")
	_, err = n.rec.ExplainPlan(ctx, &pb.ExplainPlanRequest{Shard: shardID, SourceAddress: closed})
	requireStatus(t, "ExplainPlan from a closed port", err, codes.Unavailable, closed, "connection refused")

	for _, addr := range []string{"not an address", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:99999", "127.0.0.1:http",
		"http://127.0.0.1:7401", ":7401", "bad_host:7401", "127.0.0.1:7401/x"} {
		_, err := n.rec.StartRecovery(ctx, &pb.StartRecoveryRequest{Shard: shardID, SourceAddress: addr})
		requireStatus(t, "StartRecovery from "+addr, err, codes.InvalidArgument, "source_address", "host:port")
		_, err = n.rec.ExplainPlan(ctx, &pb.ExplainPlanRequest{Shard: shardID, SourceAddress: addr})
		requireStatus(t, "ExplainPlan from "+addr, err, codes.InvalidArgument, "source_address")
	}
	_, err = n.rec.ExplainPlan(ctx, &pb.ExplainPlanRequest{Shard: shardID})
	requireStatus(t, "ExplainPlan without a source", err, codes.InvalidArgument, "source_address is required")

	if l := mustv(n.rec.ListRecoveries(ctx, &pb.ListRecoveriesRequest{}))(t); len(l.Recoveries) != 0 {
		t.Fatalf("refused requests registered recoveries: %v", l.Recoveries)
	}
	// recoverctl says the source is the problem, not the daemon: exit 1,
	// not 4 (daemon unreachable).
	for _, sub := range [][]string{{"recover", "--wait"}, {"explain"}} {
		args := append(sub, "--addr", n.GRPCAddr, "--insecure", "--shard", "logs/0", "--source", closed)
		out, err := exec.Command(testutil.Binary(t, "recoverctl"), args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "connection refused") || strings.Contains(string(out), "daemon unreachable") {
			t.Fatalf("recoverctl %s from a closed port: %v\n%s", sub[0], err, out)
		}
	}
	for _, p := range tree(t, n.Data) {
		if strings.Contains(p, shardID.Index) {
			t.Fatalf("refused requests created %s on the node: %v", p, tree(t, n.Data))
		}
	}
}

// TestListRecoveriesUnknownStage: a stage value that does not exist is
// InvalidArgument naming the valid ones (it was an empty list, as if no
// recovery were in that stage).
func TestListRecoveriesUnknownStage(t *testing.T) {
	n := wrap(testutil.StartNode(t, testutil.NodeOptions{Name: "n1"}))
	ctx := ctxT(t)
	for _, st := range []pb.Stage{pb.Stage(99), pb.Stage(-1), pb.Stage_STAGE_UNSPECIFIED} {
		_, err := n.rec.ListRecoveries(ctx, &pb.ListRecoveriesRequest{Stages: []pb.Stage{pb.Stage_STAGE_DONE, st}})
		requireStatus(t, "ListRecoveries with stage "+st.String(), err, codes.InvalidArgument, "is not a stage", "STAGE_QUEUED", "STAGE_CANCELLED")
	}
	if _, err := n.rec.ListRecoveries(ctx, &pb.ListRecoveriesRequest{Stages: []pb.Stage{pb.Stage_STAGE_FAILED}}); err != nil {
		t.Fatalf("a valid stage: %v", err)
	}
}
