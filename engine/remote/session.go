package remote

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/metadata"

	"github.com/recoverd/recoverd/engine"
)

// sessionKey is the gRPC metadata key that names the caller's session.
const sessionKey = "recoverd-engine-session"

// session is what one client holds in the engine: handles of shards, pins
// and stagings. It ends with the client's Session stream; end lets go of
// all of it (engine.proto, "Sessions").
type session struct {
	id string

	mu     sync.Mutex
	ended  bool
	shards map[string]engine.Shard
	// targets are the shard handles OpenTarget made: only they take the
	// Target calls.
	targets  map[string]bool
	pins     map[string]*heldPin
	stagings map[string]engine.Staging
	// finished are the stagings published, abandoned or suspended: their
	// handles answer ErrClosed, as the engine's own would.
	finished map[string]bool
}

// heldPin is a pin and when its TTL runs out, as far as the server knows:
// pins past it are dropped from the session (the engine ended them).
type heldPin struct {
	pin     engine.Pin
	ttl     time.Duration
	renewed time.Time
}

func newSession() *session {
	return &session{id: uuid.NewString(), shards: map[string]engine.Shard{}, targets: map[string]bool{}, pins: map[string]*heldPin{},
		stagings: map[string]engine.Staging{}, finished: map[string]bool{}}
}

func (s *session) closedErr() error {
	return fmt.Errorf("%w: engine session %s ended; ask for the shard again", engine.ErrClosed, s.id)
}

// add stores v under a new handle in m.
func add[V any](s *session, m map[string]V, v V) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return "", s.closedErr()
	}
	h := uuid.NewString()
	m[h] = v
	return h, nil
}

// get returns the handle h of m, or notFound's error (ErrClosed for a
// shard: ask again; ErrPinLost for a pin; ErrNotFound for a staging).
func get[V any](s *session, m map[string]V, h string, notFound error, what string) (V, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := m[h]
	if s.ended || !ok {
		var zero V
		return zero, fmt.Errorf("%w: no %s %q in engine session %s", notFound, what, h, s.id)
	}
	return v, nil
}

// finish drops staging h, whose handle then answers ErrClosed.
func (s *session) finish(h string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stagings != nil {
		delete(s.stagings, h)
		s.finished[h] = true
	}
}

func drop[V any](s *session, m map[string]V, h string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(m, h)
}

// pruneExpired drops the pins whose TTL ran out (the engine ended them):
// a session that never releases its TTL pins holds none forever.
func (s *session) pruneExpired(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for h, p := range s.pins {
		if p.ttl > 0 && now.Sub(p.renewed) > 2*p.ttl {
			delete(s.pins, h)
		}
	}
}

// end lets go of what the session holds: its pins are released (nobody
// reads their paths any more) and its stagings suspended (the recovery
// resumes from them when recoverd comes back, or cleanup sweeps them).
func (s *session) end(log *slog.Logger) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended = true
	pins, stagings := s.pins, s.stagings
	s.pins, s.stagings, s.shards = nil, nil, nil
	s.mu.Unlock()
	ctx := context.Background()
	for _, p := range pins {
		if err := p.pin.Release(ctx); err != nil {
			log.Warn("release a pin of an ended engine session", "session", s.id, "pin", p.pin.ID(), "err", err)
		}
	}
	for _, st := range stagings {
		if err := st.Suspend(ctx); err != nil {
			log.Warn("suspend a staging of an ended engine session", "session", s.id, "staging", st.ID(), "err", err)
		}
	}
	if len(pins)+len(stagings) > 0 {
		log.Info("engine session ended", "session", s.id, "pins_released", len(pins), "stagings_suspended", len(stagings))
	}
}

// sessionOf returns the session the call names.
func (srv *Server) sessionOf(ctx context.Context) (*session, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	ids := md.Get(sessionKey)
	if len(ids) != 1 {
		return nil, fmt.Errorf("%w: the call names no engine session (open one with Session and send its id in %q)", engine.ErrInvalidArgument, sessionKey)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	s, ok := srv.sessions[ids[0]]
	if !ok {
		return nil, fmt.Errorf("%w: engine session %s ended (the engine restarted, or the client closed it)", engine.ErrClosed, ids[0])
	}
	return s, nil
}
