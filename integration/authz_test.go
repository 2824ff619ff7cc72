package integration

import (
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/internal/testutil"
)

// Authorization on the peer API, with real processes and the certificates
// `recoverctl certs` issues: only node certificates may use it; pins and
// leases are bounded per holder (the node its certificate names); only the
// holder that took a pin or a lease may renew, release or read under it.
// One subtest per refusal.
func TestPeerAuthorization(t *testing.T) {
	pki := secCerts(t, "n1", "n2", "n3")
	n1 := testutil.StartNode(t, testutil.NodeOptions{Name: "n1", Secure: true, Args: append(pki.nodeArgs("n1"),
		"--max-outgoing", "8", "--max-pins-per-holder", "2", "--max-leases-per-holder", "2")})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("n1 log:\n%s", n1.LogTail(30))
		}
	})
	token := pki.token(t)
	shard := &pb.ShardId{Index: "authz", Shard: 0}
	op := pb.NewShardServiceClient(secDial(t, n1.GRPCAddr, &tls.Config{RootCAs: pki.pool(t), MinVersion: tls.VersionTLS13}, token))
	mustv(op.CreateShard(secCtx(t), &pb.CreateShardRequest{Shard: shard}))(t)
	docs := make([]*pb.Doc, 50)
	for i := range docs {
		docs[i] = &pb.Doc{Key: fmt.Sprintf("doc-%03d", i), Value: []byte(strings.Repeat("v", 256))}
	}
	mustv(op.Index(secCtx(t), &pb.IndexRequest{Shard: shard, Docs: docs}))(t)
	mustv(op.Flush(secCtx(t), &pb.FlushRequest{Shard: shard}))(t)

	as := func(name string) pb.PeerServiceClient {
		return pb.NewPeerServiceClient(secDial(t, n1.PeerAddr, &tls.Config{RootCAs: pki.pool(t),
			Certificates: []tls.Certificate{pki.keyPair(t, name)}, MinVersion: tls.VersionTLS13}, ""))
	}
	n2, n3 := as("n2"), as("n3")
	pin := func(c pb.PeerServiceClient) (*pb.PinCommitResponse, error) {
		return c.PinCommit(secCtx(t), &pb.PinCommitRequest{Shard: shard, Holder: "test", Ttl: durationpb.New(time.Minute)})
	}
	lease := func(c pb.PeerServiceClient, id string) error {
		_, err := c.AcquireLease(secCtx(t), &pb.AcquireLeaseRequest{Shard: shard, LeaseId: id, RetainingSeqno: 0, Source: "test"})
		return err
	}

	t.Run("operator certificate refused", func(t *testing.T) {
		p := as("recoverctl")
		_, err := p.GetShardMetadata(secCtx(t), &pb.GetShardMetadataRequest{Shard: shard})
		requireStatus(t, "GetShardMetadata", err, codes.PermissionDenied, "not a node certificate", "recoverd://node/")
		_, err = p.PinCommit(secCtx(t), &pb.PinCommitRequest{Shard: shard, Holder: "intruder"})
		requireStatus(t, "PinCommit", err, codes.PermissionDenied, "not a node certificate")
		_, err = p.AcquireLease(secCtx(t), &pb.AcquireLeaseRequest{Shard: shard, LeaseId: "intruder"})
		requireStatus(t, "AcquireLease", err, codes.PermissionDenied, "not a node certificate")
		_, err = p.ReleaseLease(secCtx(t), &pb.ReleaseLeaseRequest{Shard: shard, LeaseId: "any"})
		requireStatus(t, "ReleaseLease", err, codes.PermissionDenied, "not a node certificate")
		_, err = p.GetShardDigest(secCtx(t), &pb.GetShardDigestRequest{Shard: shard})
		requireStatus(t, "GetShardDigest", err, codes.PermissionDenied, "not a node certificate")
		requireStatus(t, "FetchOps", streamErr(p.FetchOps(secCtx(t), &pb.FetchOpsRequest{Shard: shard})), codes.PermissionDenied, "not a node certificate")
		requireStatus(t, "FetchFile", streamErr(p.FetchFile(secCtx(t), &pb.FetchFileRequest{Shard: shard, PinId: "any", Name: "seg_1"})),
			codes.PermissionDenied, "not a node certificate")
	})

	t.Run("pins bounded per holder", func(t *testing.T) {
		var ids []string
		for range 2 {
			ids = append(ids, mustv(pin(n2))(t).Pin.Id)
		}
		_, err := pin(n2)
		requireStatus(t, "a third pin of n2", err, codes.ResourceExhausted, "node n2 holds 2 commit pins")
		if rpcerr.Reason(err) != pb.ErrorReason_TOO_MANY_PINS {
			t.Fatalf("reason %v", rpcerr.Reason(err))
		}
		other := mustv(pin(n3))(t).Pin.Id // the bound is n2's, not the node's
		for _, id := range ids {
			mustv(n2.ReleasePin(secCtx(t), &pb.ReleasePinRequest{PinId: id}))(t)
		}
		mustv(n3.ReleasePin(secCtx(t), &pb.ReleasePinRequest{PinId: other}))(t)
		mustv(pin(n2))(t) // a released pin frees a place; expires with its TTL
	})

	t.Run("leases bounded per holder", func(t *testing.T) {
		for _, id := range []string{"n2-a", "n2-b"} {
			if err := lease(n2, id); err != nil {
				t.Fatal(err)
			}
		}
		err := lease(n2, "n2-c")
		requireStatus(t, "a third lease of n2", err, codes.ResourceExhausted, "too many retention leases")
		if rpcerr.Reason(err) != pb.ErrorReason_TOO_MANY_LEASES {
			t.Fatalf("reason %v", rpcerr.Reason(err))
		}
		if err := lease(n3, "n3-a"); err != nil { // the bound is n2's
			t.Fatal(err)
		}
		for _, c := range []struct {
			c  pb.PeerServiceClient
			id string
		}{{n2, "n2-a"}, {n2, "n2-b"}, {n3, "n3-a"}} {
			mustv(c.c.ReleaseLease(secCtx(t), &pb.ReleaseLeaseRequest{Shard: shard, LeaseId: c.id}))(t)
		}
	})

	t.Run("only the holder renews, releases or reads under a pin", func(t *testing.T) {
		p := mustv(pin(n2))(t).Pin.Id
		_, err := n3.RenewPin(secCtx(t), &pb.RenewPinRequest{PinId: p})
		requireStatus(t, "n3 renews n2's pin", err, codes.PermissionDenied, "held by node n2, not node n3")
		_, err = n3.ReleasePin(secCtx(t), &pb.ReleasePinRequest{PinId: p})
		requireStatus(t, "n3 releases n2's pin", err, codes.PermissionDenied, "held by node n2")
		meta := mustv(n2.GetShardMetadata(secCtx(t), &pb.GetShardMetadataRequest{Shard: shard}))(t).Info.Metadata
		name := meta.Files[0].Name
		requireStatus(t, "n3 reads under n2's pin", streamErr(n3.FetchFile(secCtx(t), &pb.FetchFileRequest{Shard: shard, PinId: p, Name: name})),
			codes.PermissionDenied, "held by node n2")
		mustv(n2.RenewPin(secCtx(t), &pb.RenewPinRequest{PinId: p}))(t)
		if err := streamErr(n2.FetchFile(secCtx(t), &pb.FetchFileRequest{Shard: shard, PinId: p, Name: name})); err != nil {
			t.Fatalf("n2 reads under its pin: %v", err)
		}
		mustv(n2.ReleasePin(secCtx(t), &pb.ReleasePinRequest{PinId: p}))(t)
	})

	t.Run("only the holder renews or releases a lease, across a restart", func(t *testing.T) {
		if err := lease(n2, "recovery-n2-r1"); err != nil {
			t.Fatal(err)
		}
		n1.Restart() // leases are durable, and so is their holder
		_, err := n3.RenewLease(secCtx(t), &pb.RenewLeaseRequest{Shard: shard, LeaseId: "recovery-n2-r1"})
		requireStatus(t, "n3 renews n2's lease", err, codes.PermissionDenied, "held by another holder")
		_, err = n3.ReleaseLease(secCtx(t), &pb.ReleaseLeaseRequest{Shard: shard, LeaseId: "recovery-n2-r1"})
		requireStatus(t, "n3 releases n2's lease", err, codes.PermissionDenied, "held by another holder")
		if err := lease(n3, "recovery-n2-r1"); err == nil {
			t.Fatal("n3 took a lease id n2 holds")
		}
		info := mustv(n2.GetShardMetadata(secCtx(t), &pb.GetShardMetadataRequest{Shard: shard}))(t).Info
		if len(info.Leases) != 1 || info.Leases[0].Id != "recovery-n2-r1" {
			t.Fatalf("leases after the refusals: %v", info.Leases)
		}
		mustv(n2.RenewLease(secCtx(t), &pb.RenewLeaseRequest{Shard: shard, LeaseId: "recovery-n2-r1"}))(t)
		mustv(n2.ReleaseLease(secCtx(t), &pb.ReleaseLeaseRequest{Shard: shard, LeaseId: "recovery-n2-r1"}))(t)
	})
}
