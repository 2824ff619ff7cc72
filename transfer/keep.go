package transfer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
)

// ErrExpired is returned by KeepAlive when renewals failed until what it
// kept would have expired on the source.
var ErrExpired = errors.New("transfer: renewals failed until it expired")

// minKeepEvery bounds how often KeepAlive renews, whatever the TTL.
const minKeepEvery = 10 * time.Millisecond

// KeepAlive renews something a source holds for this node under a TTL (a
// commit pin, a retention lease) until ctx ends, so that it lives as long
// as the work that needs it, however long that is. It renews every ttl/3;
// a renewal that fails is retried, faster, until the hold would have
// expired. renew returns the TTL the source granted (0 keeps the last).
//
// It returns nil once ctx ends; an error wrapping the renewal's when gone
// says the source no longer holds it; or an error wrapping ErrExpired and
// the last renewal error when renewals failed for a whole TTL. onRetry,
// when set, is told of every failed renewal that is retried.
func KeepAlive(ctx context.Context, ttl time.Duration, renew func(ctx context.Context) (time.Duration, error),
	gone func(error) bool, onRetry func(err error, expiresIn time.Duration)) error {
	every := max(ttl/3, minKeepEvery)
	expires := time.Now().Add(ttl)
	wait := every
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		sent := time.Now()
		rctx, cancel := context.WithTimeout(ctx, max(every, 100*time.Millisecond))
		granted, err := renew(rctx)
		cancel()
		switch {
		case err == nil:
			if granted > 0 {
				ttl, every = granted, max(granted/3, minKeepEvery)
			}
			expires, wait = sent.Add(ttl), every
		case ctx.Err() != nil:
			return nil
		case gone(err):
			return err
		case time.Now().After(expires):
			return fmt.Errorf("%w (TTL %v), last: %w", ErrExpired, ttl, err)
		default:
			if onRetry != nil {
				onRetry(err, time.Until(expires))
			}
			wait = max(min(every/4, time.Until(expires)/2), 0) + time.Millisecond
		}
	}
}

// PinRenewer is the part of pb.PeerServiceClient that KeepPin uses.
type PinRenewer interface {
	RenewPin(ctx context.Context, in *pb.RenewPinRequest, opts ...grpc.CallOption) (*pb.RenewPinResponse, error)
}

// KeepPin keeps a commit pin alive (KeepAlive) until ctx ends (it returns
// nil) or the source says the pin is gone (an error wrapping
// ErrPinNotFound). Renewals that fail for a whole TTL do not end it: while
// a stream reads under the pin the source keeps it, so renewing goes on.
func KeepPin(ctx context.Context, c PinRenewer, pin Pin, onRetry func(err error, expiresIn time.Duration)) error {
	renew := func(ctx context.Context) (time.Duration, error) {
		resp, err := c.RenewPin(ctx, &pb.RenewPinRequest{PinId: pin.ID})
		if err != nil {
			return 0, fmt.Errorf("transfer: renew pin %s: %w", pin.ID, rpcerr.FromStatus(err))
		}
		return resp.GetPin().GetTtl().AsDuration(), nil
	}
	gone := func(err error) bool { return errors.Is(err, ErrPinNotFound) }
	for {
		err := KeepAlive(ctx, pin.TTL, renew, gone, onRetry)
		if err == nil || !errors.Is(err, ErrExpired) {
			return err
		}
		if onRetry != nil {
			onRetry(err, 0)
		}
	}
}
