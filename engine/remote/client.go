package remote

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/engine"
)

// Client is an engine.Engine served by another process over EngineService:
// recoverd's side of the engine socket.
type Client struct {
	target  string
	conn    *grpc.ClientConn
	rpc     pb.EngineServiceClient
	version engine.Version

	mu     sync.Mutex
	closed bool
	sess   *clientSession
}

var _ engine.Engine = (*Client)(nil)

// clientSession is the client's end of a Session stream: dead is closed
// when the stream ends (the engine stopped, or the client closed it), and
// every handle of the session then answers ErrClosed.
type clientSession struct {
	id     string
	cancel context.CancelFunc
	dead   chan struct{}
}

func (s *clientSession) alive() bool {
	select {
	case <-s.dead:
		return false
	default:
		return true
	}
}

// reconnect is how soon the connection to a restarted engine is made
// again. gRPC's default backs off up to 2 minutes between attempts, and a
// call meanwhile fails at once: an engine down for a few seconds left
// recoverd failing its calls for a while after the engine was back. A
// local socket is cheap to try: at most every half second.
var reconnect = grpc.ConnectParams{
	Backoff:           grpcbackoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond},
	MinConnectTimeout: 5 * time.Second,
}

// Dial connects to the engine at target, "unix:///path/engine.sock" (a
// gRPC target: unix:relative/path and unix-abstract:name work too), opens
// a session and reads the engine's version. It fails at once when nothing
// answers at target.
func Dial(ctx context.Context, target string) (*Client, error) {
	if !strings.HasPrefix(target, "unix:") && !strings.HasPrefix(target, "unix-abstract:") {
		return nil, fmt.Errorf("engine address %q: want unix:///path/to/engine.sock", target)
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes)),
		grpc.WithConnectParams(reconnect))
	if err != nil {
		return nil, fmt.Errorf("engine %s: %w", target, err)
	}
	c := &Client{target: target, conn: conn, rpc: pb.NewEngineServiceClient(conn)}
	if _, err := c.session(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	v, err := c.rpc.Version(ctx, &pb.EngineVersionRequest{})
	if err != nil {
		conn.Close()
		return nil, c.wrap("version", err)
	}
	c.version = engine.Version{Writer: v.GetWriter(), MaxFormat: int(v.GetMaxFormat())}
	return c, nil
}

// session returns the live session, opening a new one when the last ended
// (the engine restarted): handles of the old one answer ErrClosed.
func (c *Client) session(ctx context.Context) (*clientSession, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, c.closedErr()
	}
	if c.sess != nil && c.sess.alive() {
		return c.sess, nil
	}
	sctx, cancel := context.WithCancel(context.Background())
	stream, err := c.rpc.Session(sctx, &pb.EngineSessionRequest{})
	if err == nil {
		var ev *pb.EngineSessionEvent
		if ev, err = stream.Recv(); err == nil {
			s := &clientSession{id: ev.GetSession(), cancel: cancel, dead: make(chan struct{})}
			go func() {
				defer close(s.dead)
				for {
					if _, err := stream.Recv(); err != nil {
						return
					}
				}
			}()
			c.sess = s
			return s, nil
		}
	}
	cancel()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, fmt.Errorf("engine %s: open a session: %w", c.target, rpcerr.FromStatus(err))
}

func (c *Client) closedErr() error {
	return fmt.Errorf("%w: the engine client of %s is closed", engine.ErrClosed, c.target)
}

// wrap turns an answer of the engine into the contract's errors
// (rpcerr.FromStatus: errors.Is sees the engine's sentinels), or ErrClosed
// once the client is closed.
func (c *Client) wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return c.closedErr()
	}
	return fmt.Errorf("engine %s: %s: %w", c.target, what, rpcerr.FromStatus(err))
}

// call returns ctx carrying the session s, or ErrClosed when s ended or
// the client is closed.
func (c *Client) call(ctx context.Context, s *clientSession) (context.Context, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, c.closedErr()
	}
	if !s.alive() {
		return nil, fmt.Errorf("%w: the engine session %s ended (the engine at %s restarted, or the connection broke); ask for the shard again",
			engine.ErrClosed, s.id, c.target)
	}
	return metadata.AppendToOutgoingContext(ctx, sessionKey, s.id), nil
}

// engineCall is call on the current session, opened if need be.
func (c *Client) engineCall(ctx context.Context) (context.Context, *clientSession, error) {
	s, err := c.session(ctx)
	if err != nil {
		return nil, nil, err
	}
	cctx, err := c.call(ctx, s)
	return cctx, s, err
}

// Version implements engine.Engine: what the engine answered at Dial.
func (c *Client) Version() engine.Version { return c.version }

// Shards implements engine.Engine.
func (c *Client) Shards(ctx context.Context) ([]engine.ShardStatus, error) {
	cctx, _, err := c.engineCall(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := c.rpc.ListShards(cctx, &pb.ListEngineShardsRequest{})
	if err != nil {
		return nil, c.wrap("list shards", err)
	}
	var out []engine.ShardStatus
	for _, s := range resp.GetShards() {
		since := s.GetSince()
		st := engine.ShardStatus{ID: shardIDFromPB(s.GetShard()), State: engine.State(s.GetState()), Reason: s.GetReason()}
		if since != nil {
			st.Since = since.AsTime()
		}
		out = append(out, st)
	}
	return out, nil
}

// checkID refuses what the wire cannot carry (a negative shard number);
// the engine checks the rest.
func checkID(id engine.ShardID) error {
	if id.Shard < 0 {
		return fmt.Errorf("%w: shard number %d is negative", engine.ErrInvalidName, id.Shard)
	}
	return nil
}

// Shard implements engine.Engine.
func (c *Client) Shard(ctx context.Context, id engine.ShardID) (engine.Shard, error) {
	cctx, s, err := c.engineCall(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkID(id); err != nil {
		return nil, err
	}
	resp, err := c.rpc.GetShard(cctx, &pb.GetEngineShardRequest{Shard: shardID(id)})
	if err != nil {
		return nil, c.wrap("shard "+id.String(), err)
	}
	return &shard{c: c, s: s, h: resp.GetHandle(), id: id}, nil
}

// OpenTarget implements engine.Engine.
func (c *Client) OpenTarget(ctx context.Context, id engine.ShardID) (engine.Target, string, error) {
	cctx, s, err := c.engineCall(ctx)
	if err != nil {
		return nil, "", err
	}
	if err := checkID(id); err != nil {
		return nil, "", err
	}
	resp, err := c.rpc.OpenTarget(cctx, &pb.OpenEngineTargetRequest{Shard: shardID(id)})
	if err != nil {
		return nil, "", c.wrap("open target "+id.String(), err)
	}
	return &shard{c: c, s: s, h: resp.GetHandle(), id: id}, resp.GetReplaced(), nil
}

// RemoveUncommitted implements engine.Engine.
func (c *Client) RemoveUncommitted(ctx context.Context, id engine.ShardID) error {
	cctx, _, err := c.engineCall(ctx)
	if err != nil {
		return err
	}
	if err := checkID(id); err != nil {
		return err
	}
	_, err = c.rpc.RemoveUncommitted(cctx, &pb.RemoveUncommittedRequest{Shard: shardID(id)})
	return c.wrap("remove uncommitted "+id.String(), err)
}

// SweepUncommitted implements engine.Engine.
func (c *Client) SweepUncommitted(ctx context.Context, keep map[engine.ShardID]bool) ([]engine.ShardID, error) {
	cctx, _, err := c.engineCall(ctx)
	if err != nil {
		return nil, err
	}
	req := &pb.SweepUncommittedRequest{}
	for id, k := range keep {
		if k && id.Shard >= 0 {
			req.Keep = append(req.Keep, shardID(id))
		}
	}
	resp, err := c.rpc.SweepUncommitted(cctx, req)
	if err != nil {
		return nil, c.wrap("sweep uncommitted", err)
	}
	var out []engine.ShardID
	for _, id := range resp.GetRemoved() {
		out = append(out, shardIDFromPB(id))
	}
	return out, nil
}

// RefuseWrites implements engine.Engine.
func (c *Client) RefuseWrites(ctx context.Context, id engine.ShardID, recoveryID string) error {
	return c.writes(ctx, id, recoveryID, true)
}

// ResumeWrites implements engine.Engine.
func (c *Client) ResumeWrites(ctx context.Context, id engine.ShardID, recoveryID string) error {
	return c.writes(ctx, id, recoveryID, false)
}

func (c *Client) writes(ctx context.Context, id engine.ShardID, recoveryID string, refuse bool) error {
	cctx, _, err := c.engineCall(ctx)
	if err != nil {
		return err
	}
	if err := checkID(id); err != nil {
		return err
	}
	req := &pb.EngineWritesRequest{Shard: shardID(id), RecoveryId: recoveryID}
	if refuse {
		_, err = c.rpc.RefuseWrites(cctx, req)
		return c.wrap("refuse writes to "+id.String(), err)
	}
	_, err = c.rpc.ResumeWrites(cctx, req)
	return c.wrap("resume writes to "+id.String(), err)
}

// Close implements engine.Engine: it ends the session (the engine releases
// its pins and suspends its stagings) and closes the connection.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	s := c.sess
	c.mu.Unlock()
	if s != nil {
		s.cancel()
	}
	if err := c.conn.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("engine %s: close: %w", c.target, err)
	}
	return nil
}
