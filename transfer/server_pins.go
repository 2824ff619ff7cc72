package transfer

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/engine"
)

// pin is one engine pin held for a remote client. The engine's pin has
// no TTL of its own: the peer server expires it (its TTL counts from the
// last renewal or the end of the last stream reading under it).
type pin struct {
	id      string
	shard   engine.ShardID
	holder  string // the label the client gave, for logs
	owner   string // the authenticated caller that took it (PeerIdentity)
	pin     engine.Pin
	meta    engine.Metadata // the pinned commit
	ttl     time.Duration
	expires time.Time   // valid while streams == 0
	streams int         // FetchFile streams reading under the pin
	timer   *time.Timer // fires expire; only expire re-arms it
	gone    bool        // removed from the map; pin released when streams reach 0
	// incompressible counts the files of this pin whose first chunk did not
	// compress: past incompressibleFiles, the pin's other files are sent
	// raw without trying (a shard of many small files would otherwise pay a
	// compression attempt per file).
	incompressible atomic.Int32
	// compress estimates the link and zstd speeds of this pin's streams
	// (adaptive.go).
	compress compressModel
}

// release ends the engine's pin. The engine's pin outlives the call that
// took it: it is released with a context of its own.
func (p *pin) release() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return p.pin.Release(ctx)
}

func (p *pin) pb() *pb.Pin {
	return &pb.Pin{Id: p.id, Shard: pbconv.ShardID(p.shard), Generation: p.meta.Generation,
		Ttl: durationpb.New(p.ttl), ExpiresAt: pbconv.Time(p.expires)}
}

// PinCommit implements PeerService.
func (s *PeerServer) PinCommit(ctx context.Context, req *pb.PinCommitRequest) (*pb.PinCommitResponse, error) {
	sh, id, err := s.shard(ctx, req.GetShard())
	if err != nil {
		return nil, err
	}
	ttl := s.cfg.PinTTL
	if req.Ttl != nil {
		if err := req.Ttl.CheckValid(); err != nil || req.Ttl.AsDuration() < 0 {
			return nil, invalid("pin ttl %v is not a valid duration", req.Ttl)
		}
		if d := req.Ttl.AsDuration(); d > 0 {
			ttl = min(max(d, min(s.cfg.PinTTL, time.Second)), s.cfg.MaxPinTTL)
		}
	}
	if len(req.Holder) > engine.MaxNameLen {
		return nil, invalid("pin holder is %d bytes long, at most %d allowed", len(req.Holder), engine.MaxNameLen)
	}
	if req.PinId != "" {
		if err := engine.ValidateName(req.PinId); err != nil {
			return nil, invalid("pin id: %v", err)
		}
	}
	owner := PeerIdentity(ctx)
	s.mu.Lock()
	p, err := s.samePinLocked(req, id, owner)
	if err == nil && p == nil {
		err = s.pinLimitsLocked(owner)
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if p != nil { // asked again (an answer lost, a client restarted): the same pin
		return s.pinResponse(ctx, sh, p)
	}
	// The engine pins outside the server's lock (a remote engine answers
	// over its socket); the limits are checked again once it did.
	ep, err := sh.Pin(ctx, engine.PinOptions{})
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	p = &pin{id: req.PinId, shard: id, holder: req.Holder, owner: owner, pin: ep, meta: ep.Metadata(), ttl: ttl, expires: time.Now().Add(ttl)}
	if p.id == "" {
		p.id = uuid.NewString()
	}
	s.mu.Lock()
	same, err := s.samePinLocked(req, id, owner)
	if err == nil && same == nil {
		err = s.pinLimitsLocked(owner)
	}
	if err != nil || same != nil {
		s.mu.Unlock()
		if rerr := p.release(); rerr != nil {
			s.log.Warn("release pin", "shard", id.String(), "err", rerr)
		}
		if err != nil {
			return nil, err
		}
		return s.pinResponse(ctx, sh, same)
	}
	p.timer = time.AfterFunc(ttl, func() { s.expire(p) })
	s.pins[p.id] = p
	s.peakPins = max(s.peakPins, len(s.pins))
	s.mu.Unlock()
	s.log.Debug("commit pinned", "pin", p.id, "shard", id.String(), "generation", p.meta.Generation, "holder", p.holder, "owner", owner, "ttl", ttl)
	return s.pinResponse(ctx, sh, p)
}

// samePinLocked returns the pin req names if it exists (asked again: it
// is renewed), an error if that id is another holder's or shard's, and
// nil, nil when req names none.
func (s *PeerServer) samePinLocked(req *pb.PinCommitRequest, id engine.ShardID, owner string) (*pin, error) {
	if s.closed {
		return nil, status.Error(codes.Unavailable, "peer server is shutting down; retry on another node or later")
	}
	p := s.pins[req.PinId]
	if req.PinId == "" || p == nil {
		return nil, nil
	}
	if p.shard != id || p.holder != req.Holder || p.owner != owner {
		return nil, status.Errorf(codes.AlreadyExists, "pin id %q is taken by another holder or shard; choose another id", req.PinId)
	}
	p.expires = time.Now().Add(p.ttl)
	return p, nil
}

// pinLimitsLocked refuses a new pin past MaxPins or MaxPinsPerHolder.
func (s *PeerServer) pinLimitsLocked(owner string) error {
	if len(s.pins) >= s.cfg.MaxPins {
		return rpcerr.Errorf(codes.ResourceExhausted, pb.ErrorReason_TOO_MANY_PINS,
			"this node holds %d commit pins, its limit; retry later", s.cfg.MaxPins)
	}
	if n := s.pinsOfLocked(owner); n >= s.cfg.MaxPinsPerHolder {
		return rpcerr.Errorf(codes.ResourceExhausted, pb.ErrorReason_TOO_MANY_PINS,
			"%s holds %d commit pins on this node, the most one holder may; release one or retry later", holderName(owner), n)
	}
	return nil
}

// pinResponse answers PinCommit with the pin and the copy's state at the
// pinned commit.
func (s *PeerServer) pinResponse(ctx context.Context, sh engine.Shard, p *pin) (*pb.PinCommitResponse, error) {
	s.mu.Lock()
	resp := &pb.PinCommitResponse{Pin: p.pb()}
	s.mu.Unlock()
	in, err := sh.Info(ctx)
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	resp.Info = s.info(in, p.meta)
	return resp, nil
}

// pinsOfLocked counts the pins owner holds.
func (s *PeerServer) pinsOfLocked(owner string) int {
	n := 0
	for _, p := range s.pins {
		if p.owner == owner {
			n++
		}
	}
	return n
}

// notOwner refuses a call on a pin another holder took.
func notOwner(p *pin, caller string) error {
	return status.Errorf(codes.PermissionDenied, "commit pin %s is held by %s, not %s: only the holder that took it may renew, release or read under it",
		p.id, holderName(p.owner), holderName(caller))
}

// expire runs when a pin's timer fires: it releases the pin if it is idle
// past its TTL, or re-arms the timer.
func (s *PeerServer) expire(p *pin) {
	s.mu.Lock()
	if p.gone || s.pins[p.id] != p {
		s.mu.Unlock()
		return
	}
	if p.streams > 0 {
		p.timer.Reset(p.ttl) // checked again later; the last stream sets expires
		s.mu.Unlock()
		return
	}
	if d := time.Until(p.expires); d > 0 {
		p.timer.Reset(d)
		s.mu.Unlock()
		return
	}
	delete(s.pins, p.id)
	p.gone = true
	s.mu.Unlock()
	s.c.pinsExpired.Add(1)
	s.log.Info("commit pin expired: its holder went silent", "pin", p.id, "shard", p.shard.String(), "holder", p.holder, "ttl", p.ttl)
	if err := p.release(); err != nil {
		s.log.Warn("release expired pin", "pin", p.id, "err", err)
	}
}

func pinNotFound(id string) error {
	return rpcerr.Statusf(ErrPinNotFound,
		"commit pin %q is unknown or expired (idle for its TTL, or released): pin the commit again and re-plan", id)
}

// RenewPin implements PeerService.
func (s *PeerServer) RenewPin(ctx context.Context, req *pb.RenewPinRequest) (*pb.RenewPinResponse, error) {
	if req.PinId == "" {
		return nil, invalid("pin_id is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pins[req.PinId]
	if p == nil {
		return nil, pinNotFound(req.PinId)
	}
	if caller := PeerIdentity(ctx); p.owner != caller {
		return nil, notOwner(p, caller)
	}
	p.expires = time.Now().Add(p.ttl)
	return &pb.RenewPinResponse{Pin: p.pb()}, nil
}

// ReleasePin implements PeerService.
func (s *PeerServer) ReleasePin(ctx context.Context, req *pb.ReleasePinRequest) (*pb.ReleasePinResponse, error) {
	if req.PinId == "" {
		return nil, invalid("pin_id is required")
	}
	s.mu.Lock()
	p := s.pins[req.PinId]
	if caller := PeerIdentity(ctx); p != nil && p.owner != caller {
		s.mu.Unlock()
		return nil, notOwner(p, caller)
	}
	release := false
	if p != nil {
		delete(s.pins, p.id)
		p.gone = true
		p.timer.Stop()
		release = p.streams == 0
	}
	s.mu.Unlock()
	if release {
		if err := p.release(); err != nil {
			s.log.Warn("release pin", "pin", p.id, "err", err)
		}
	}
	return &pb.ReleasePinResponse{}, nil
}

// usePin registers a stream reading under a pin; done must be called when
// the stream ends.
func (s *PeerServer) usePin(ctx context.Context, pinID string, shard engine.ShardID) (*pin, func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pins[pinID]
	if p == nil {
		return nil, nil, pinNotFound(pinID)
	}
	if caller := PeerIdentity(ctx); p.owner != caller {
		return nil, nil, notOwner(p, caller)
	}
	if p.shard != shard {
		return nil, nil, invalid("commit pin %q holds shard %s, not %s", pinID, p.shard, shard)
	}
	p.streams++
	return p, func() {
		s.mu.Lock()
		p.streams--
		p.expires = time.Now().Add(p.ttl)
		release := p.gone && p.streams == 0
		s.mu.Unlock()
		if release {
			if err := p.release(); err != nil {
				s.log.Warn("release pin", "pin", p.id, "err", err)
			}
		}
	}, nil
}
