package transfer

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/engine"
)

// Pin is a commit pin held on a source (PinCommit).
type Pin struct {
	ID         string
	Shard      engine.ShardID
	Generation uint64
	// TTL is how long the pin outlives its holder's silence; KeepPin (and
	// FetchFiles, unless told the caller does) renews the pin at a third
	// of it.
	TTL       time.Duration
	ExpiresAt time.Time
}

func pinFromPB(m *pb.Pin) (Pin, error) {
	if m == nil || m.Id == "" {
		return Pin{}, fmt.Errorf("%w: answer without a pin", ErrProtocol)
	}
	id, err := pbconv.ShardIDFromPB(m.Shard)
	if err != nil {
		return Pin{}, fmt.Errorf("%w: pin: %v", ErrProtocol, err)
	}
	return Pin{ID: m.Id, Shard: id, Generation: m.Generation, TTL: m.GetTtl().AsDuration(), ExpiresAt: pbconv.TimeFromPB(m.ExpiresAt)}, nil
}

// PinCommit pins the source's current commit for ttl (0: the source's
// default) and returns the pin and the pinned commit's info. holder labels
// the pin in the source's logs.
func PinCommit(ctx context.Context, c pb.PeerServiceClient, shard engine.ShardID, ttl time.Duration, holder string) (Pin, ShardInfo, error) {
	return PinCommitAs(ctx, c, shard, ttl, holder, "")
}

// PinCommitAs is PinCommit with an id chosen by the caller (see
// PinCommitRequest.pin_id): recorded before the call, it lets the caller
// release the pin whatever became of the answer, and a call retried after
// a lost answer gets the same pin.
func PinCommitAs(ctx context.Context, c pb.PeerServiceClient, shard engine.ShardID, ttl time.Duration, holder, id string) (Pin, ShardInfo, error) {
	req := &pb.PinCommitRequest{Shard: pbconv.ShardID(shard), Holder: holder, PinId: id}
	if ttl > 0 {
		req.Ttl = durationpb.New(ttl)
	}
	resp, err := c.PinCommit(ctx, req)
	if err != nil {
		return Pin{}, ShardInfo{}, fmt.Errorf("transfer: pin commit of %s: %w", shard, rpcerr.FromStatus(err))
	}
	p, err := pinFromPB(resp.Pin)
	if err != nil {
		return Pin{}, ShardInfo{}, err
	}
	info, err := ShardInfoFromPB(resp.Info)
	if err != nil {
		return Pin{}, ShardInfo{}, err
	}
	return p, info, nil
}

// RenewPin restarts a pin's TTL; a pin gone answers ErrPinNotFound.
func RenewPin(ctx context.Context, c pb.PeerServiceClient, pinID string) (Pin, error) {
	resp, err := c.RenewPin(ctx, &pb.RenewPinRequest{PinId: pinID})
	if err != nil {
		return Pin{}, fmt.Errorf("transfer: renew pin %s: %w", pinID, rpcerr.FromStatus(err))
	}
	return pinFromPB(resp.Pin)
}

// ReleasePin releases a pin (an unknown one is not an error).
func ReleasePin(ctx context.Context, c pb.PeerServiceClient, pinID string) error {
	if _, err := c.ReleasePin(ctx, &pb.ReleasePinRequest{PinId: pinID}); err != nil {
		return fmt.Errorf("transfer: release pin %s: %w", pinID, rpcerr.FromStatus(err))
	}
	return nil
}
