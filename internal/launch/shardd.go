package launch

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// SharddOptions say how to start shardd, the reference engine process.
type SharddOptions struct {
	Bin     string // the shardd binary
	Name    string // the node's name in errors
	Data    string // --data
	LogPath string // stdout and stderr are appended to it
	// Listen is the document API's address (--listen); empty picks a free
	// loopback port, again (up to 5 times) when another process takes it
	// first.
	Listen string
	// Socket is the engine socket (--socket); empty is <Data>/engine.sock.
	// A Unix socket's path is bounded (108 bytes): keep it short.
	Socket string
	// Args come after shardd's own flags, so they may override them.
	Args []string
	// Env is the process's environment; nil means this process's.
	Env []string
	// Command makes the command (nil: exec.Command).
	Command func(bin string, args ...string) *exec.Cmd
	// ReadyTimeout bounds the wait for readiness (default 20s).
	ReadyTimeout time.Duration
}

// Shardd is a started shardd.
type Shardd struct {
	*Process
	Listen, Socket string
}

// EngineTarget is the --engine address of a recoverd beside it.
func (s *Shardd) EngineTarget() string { return "unix://" + s.Socket }

// StartShardd starts shardd and waits until its document API answers gRPC
// health checks SERVING and its engine socket takes connections. One that
// exits at start or is not ready in time is killed; the error holds the
// tail of its log.
func StartShardd(ctx context.Context, o SharddOptions) (*Shardd, error) {
	if o.Socket == "" {
		o.Socket = filepath.Join(o.Data, "engine.sock")
	}
	for attempt := 1; ; attempt++ {
		listen := o.Listen
		if listen == "" {
			var err error
			if listen, err = FreeAddr(); err != nil {
				return nil, err
			}
		}
		s, err := startShardd(ctx, o, listen)
		if err == nil || o.Listen != "" || attempt == 5 || !strings.Contains(err.Error(), "address already in use") {
			return s, err
		}
	}
}

func startShardd(ctx context.Context, o SharddOptions, listen string) (*Shardd, error) {
	args := append([]string{"--data", o.Data, "--listen", listen, "--socket", o.Socket}, o.Args...)
	command := o.Command
	if command == nil {
		command = exec.Command
	}
	cmd := command(o.Bin, args...)
	if o.Env != nil {
		cmd.Env = o.Env
	}
	p, err := Start("shardd "+o.Name, o.LogPath, cmd)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		p.Stop(syscall.SIGKILL, 10*time.Second)
		return nil, err
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	timeout := o.ReadyTimeout
	if timeout <= 0 {
		timeout = 20 * time.Second
	}
	err = p.WaitReady(ctx, timeout, func(ctx context.Context) error {
		if err := serving(ctx, health); err != nil {
			return err
		}
		c, err := (&net.Dialer{}).DialContext(ctx, "unix", o.Socket)
		if err != nil {
			return err
		}
		return c.Close()
	})
	if err != nil {
		p.Stop(syscall.SIGKILL, 10*time.Second)
		return nil, err
	}
	return &Shardd{Process: p, Listen: listen, Socket: o.Socket}, nil
}

// engineFlags are the flags that, in the sidecar mode, belong to the
// engine: shardd keeps the op history and grants the leases.
var engineFlags = []string{"--retain-ops", "--lease-ttl", "--copy-retention"}

// SplitEngineArgs splits a node's arguments, written for an embedded
// recoverd, into those of its shardd (the engine's flags, each with its
// value: "--f v" or "--f=v") and the rest, for recoverd --engine.
func SplitEngineArgs(args []string) (engine, rest []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case slices.Contains(engineFlags, a) && i+1 < len(args):
			engine = append(engine, a, args[i+1])
			i++
		case slices.ContainsFunc(engineFlags, func(f string) bool { return strings.HasPrefix(a, f+"=") }):
			engine = append(engine, a)
		default:
			rest = append(rest, a)
		}
	}
	return engine, rest
}
