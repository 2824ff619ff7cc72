package launch

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Listeners are a recoverd node's listen addresses (--grpc-addr,
// --peer-addr, --http-addr).
type Listeners struct {
	GRPC, Peer, HTTP string
}

// RecoverdOptions say how to start a recoverd node.
type RecoverdOptions struct {
	Bin     string // the recoverd binary
	Name    string // --node-id, and the node's name in errors
	Data    string // --data
	LogPath string // stdout and stderr are appended to it
	// Listeners left zero are free loopback ports, picked again (up to 5
	// times) when another process takes one before recoverd listens.
	Listeners Listeners
	// Secure leaves out --insecure (the caller passes TLS flags in Args);
	// readiness is then asked of /readyz, the control API speaking TLS only.
	Secure bool
	// Args come after the node's own flags, so they may override them.
	Args []string
	// Env is the process's environment; nil means this process's.
	Env []string
	// Command makes the command (nil: exec.Command), e.g. to run recoverd
	// under prlimit or in a process group of its own.
	Command func(bin string, args ...string) *exec.Cmd
	// ReadyTimeout bounds the wait for readiness (default 20s).
	ReadyTimeout time.Duration
}

// Recoverd is a started recoverd node.
type Recoverd struct {
	*Process
	Listeners
}

// StartRecoverd starts a recoverd node and waits until it serves. A node
// that exits at start or is not ready in time is killed; the error holds
// the tail of its log.
func StartRecoverd(ctx context.Context, o RecoverdOptions) (*Recoverd, error) {
	pick := o.Listeners == Listeners{}
	for attempt := 1; ; attempt++ {
		l := o.Listeners
		if pick {
			for _, a := range []*string{&l.GRPC, &l.Peer, &l.HTTP} {
				var err error
				if *a, err = FreeAddr(); err != nil {
					return nil, err
				}
			}
		}
		rd, err := startRecoverd(ctx, o, l)
		if err == nil || !pick || attempt == 5 || !strings.Contains(err.Error(), "address already in use") {
			return rd, err
		}
	}
}

func startRecoverd(ctx context.Context, o RecoverdOptions, l Listeners) (*Recoverd, error) {
	args := []string{"--data", o.Data, "--node-id", o.Name, "--grpc-addr", l.GRPC, "--peer-addr", l.Peer, "--http-addr", l.HTTP}
	if !o.Secure {
		args = append(args, "--insecure")
	}
	args = append(args, o.Args...)
	command := o.Command
	if command == nil {
		command = exec.Command
	}
	cmd := command(o.Bin, args...)
	if o.Env != nil {
		cmd.Env = o.Env
	}
	p, err := Start("recoverd "+o.Name, o.LogPath, cmd)
	if err != nil {
		return nil, err
	}
	timeout := o.ReadyTimeout
	if timeout <= 0 {
		timeout = 20 * time.Second
	}
	ready := func(ctx context.Context) error { return httpReady(ctx, l.HTTP) }
	if !o.Secure {
		conn, err := grpc.NewClient(l.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			p.Stop(syscall.SIGKILL, 10*time.Second)
			return nil, err
		}
		defer conn.Close()
		health := healthpb.NewHealthClient(conn)
		ready = func(ctx context.Context) error { return serving(ctx, health) }
	}
	if err := p.WaitReady(ctx, timeout, ready); err != nil {
		p.Stop(syscall.SIGKILL, 10*time.Second)
		return nil, err
	}
	return &Recoverd{Process: p, Listeners: l}, nil
}

// serving asks a gRPC health service about the whole listener once.
func serving(ctx context.Context, health healthpb.HealthClient) error {
	resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	if resp.Status != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health: %s", resp.Status)
	}
	return nil
}

// httpReady asks a node's /readyz once, on its plaintext HTTP listener.
func httpReady(ctx context.Context, addr string) error {
	tr := &http.Transport{DisableKeepAlives: true, Proxy: nil}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz answered %s", resp.Status)
	}
	return nil
}
