package transfer

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
)

// The PeerServer's holder rules, called directly with the identity the
// daemon's interceptor puts in the context: per-holder bounds, and only
// the holder renews or releases; the anonymous holder (no identity) is one
// holder.
func TestPinsAndLeasesBelongToTheirHolder(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 10, valueSize: 16})
	srv := NewPeerServer(engineOf(t, src),
		PeerServerConfig{MaxPins: 4, MaxPinsPerHolder: 1, MaxLeasesPerHolder: 1})
	t.Cleanup(func() { srv.Close() })
	a, b, anon := WithPeerIdentity(context.Background(), "a"), WithPeerIdentity(context.Background(), "b"), context.Background()
	code := func(err error) codes.Code { return status.Code(err) }

	pa, err := srv.PinCommit(a, &pb.PinCommitRequest{Shard: pbShard()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.PinCommit(a, &pb.PinCommitRequest{Shard: pbShard()}); code(err) != codes.ResourceExhausted || rpcerr.Reason(err) != pb.ErrorReason_TOO_MANY_PINS {
		t.Fatalf("a second pin of a: %v", err)
	}
	if _, err := srv.PinCommit(b, &pb.PinCommitRequest{Shard: pbShard()}); err != nil {
		t.Fatalf("b's first pin: %v", err)
	}
	for name, ctx := range map[string]context.Context{"b": b, "anonymous": anon} {
		if _, err := srv.RenewPin(ctx, &pb.RenewPinRequest{PinId: pa.Pin.Id}); code(err) != codes.PermissionDenied {
			t.Errorf("%s renews a's pin: %v", name, err)
		}
		if _, err := srv.ReleasePin(ctx, &pb.ReleasePinRequest{PinId: pa.Pin.Id}); code(err) != codes.PermissionDenied {
			t.Errorf("%s releases a's pin: %v", name, err)
		}
	}
	if _, err := srv.RenewPin(a, &pb.RenewPinRequest{PinId: pa.Pin.Id}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.ReleasePin(a, &pb.ReleasePinRequest{PinId: pa.Pin.Id}); err != nil {
		t.Fatal(err)
	}
	if st := srv.Stats(); st.Pins != 1 || st.PeakPins != 2 {
		t.Errorf("after a's release: %d pins, peak %d; want 1 and the peak of 2 kept", st.Pins, st.PeakPins)
	}

	if _, err := srv.AcquireLease(a, &pb.AcquireLeaseRequest{Shard: pbShard(), LeaseId: "la", RetainingSeqno: 100}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.AcquireLease(a, &pb.AcquireLeaseRequest{Shard: pbShard(), LeaseId: "la2", RetainingSeqno: 100}); code(err) != codes.ResourceExhausted || rpcerr.Reason(err) != pb.ErrorReason_TOO_MANY_LEASES {
		t.Fatalf("a second lease of a: %v", err)
	}
	if _, err := srv.RenewLease(b, &pb.RenewLeaseRequest{Shard: pbShard(), LeaseId: "la"}); code(err) != codes.PermissionDenied {
		t.Fatalf("b renews a's lease: %v", err)
	}
	if _, err := srv.ReleaseLease(anon, &pb.ReleaseLeaseRequest{Shard: pbShard(), LeaseId: "la"}); code(err) != codes.PermissionDenied {
		t.Fatalf("the anonymous holder releases a's lease: %v", err)
	}
	if _, err := srv.ReleaseLease(a, &pb.ReleaseLeaseRequest{Shard: pbShard(), LeaseId: "la"}); err != nil {
		t.Fatal(err)
	}
	// Anonymous callers are one holder: one may release what another took.
	if _, err := srv.AcquireLease(anon, &pb.AcquireLeaseRequest{Shard: pbShard(), LeaseId: "x", RetainingSeqno: 100}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.ReleaseLease(context.Background(), &pb.ReleaseLeaseRequest{Shard: pbShard(), LeaseId: "x"}); err != nil {
		t.Fatal(err)
	}
}
