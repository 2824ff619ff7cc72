package main

import (
	"context"
	"path/filepath"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/internal/launch"
)

// A demo node: in the sidecar mode shardd (the reference engine) and
// recoverd --engine on its socket, on one data directory; embedded, one
// recoverd.
type demoNode struct {
	name, data, grpcAddr, peerAddr, httpAddr string
	proc                                     *launch.Process
	conn                                     *grpc.ClientConn
	// engine and docConn: shardd and the connection to its document API
	// (the sidecar mode); shard is on docConn there, on conn embedded.
	engine  *launch.Process
	docConn *grpc.ClientConn
	shard   pb.ShardServiceClient
	rec     pb.RecoveryServiceClient
	snap    pb.SnapshotServiceClient
}

// modeName is the mode in a word or two.
func (d *demo) modeName() string {
	if d.shardd == "" {
		return "embedded mode"
	}
	return "sidecar mode"
}

// mode names the way the nodes run, for the story.
func (d *demo) mode() string {
	if d.shardd == "" {
		return "embedded mode: each node is one recoverd that holds its shards"
	}
	return "sidecar mode: each node is shardd (the engine: shards, document API) and recoverd --engine unix://<data>/engine.sock beside it"
}

// start launches a node and waits until it serves: in the sidecar mode
// shardd first, then recoverd on its socket; extra are recoverd's flags.
// Documents go to the shard API (shardd's, or recoverd's embedded),
// recoveries and snapshots to recoverd.
func (d *demo) start(ctx context.Context, n *demoNode, extra ...string) error {
	args := []string{"--repo", "file://" + filepath.Join(d.dir, "repo"), "--retry-budget", "5s", "--idle-timeout", "5s"}
	var docAddr string
	if d.shardd != "" {
		var engineArgs []string
		engineArgs, extra = launch.SplitEngineArgs(extra)
		sd, err := launch.StartShardd(ctx, launch.SharddOptions{Bin: d.shardd, Name: n.name, Data: n.data,
			LogPath: filepath.Join(d.dir, n.name+"-shardd.log"), ReadyTimeout: 15 * time.Second, Args: engineArgs})
		if err != nil {
			return err
		}
		n.engine, docAddr = sd.Process, sd.Listen
		args = append(args, "--engine", sd.EngineTarget())
	}
	rd, err := launch.StartRecoverd(ctx, launch.RecoverdOptions{Bin: d.bin, Name: n.name, Data: n.data,
		LogPath: filepath.Join(d.dir, n.name+".log"), ReadyTimeout: 15 * time.Second, Args: append(args, extra...)})
	if err != nil {
		return err
	}
	n.proc, n.grpcAddr, n.peerAddr, n.httpAddr = rd.Process, rd.GRPC, rd.Peer, rd.HTTP
	if n.conn, err = grpc.NewClient(n.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		return err
	}
	n.shard, n.rec, n.snap = pb.NewShardServiceClient(n.conn), pb.NewRecoveryServiceClient(n.conn), pb.NewSnapshotServiceClient(n.conn)
	if n.engine == nil {
		d.say("%s up (pid %d): control %s, peer %s, metrics http://%s/metrics", n.name, n.proc.PID(), n.grpcAddr, n.peerAddr, n.httpAddr)
		return nil
	}
	if n.docConn, err = grpc.NewClient(docAddr, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		return err
	}
	n.shard = pb.NewShardServiceClient(n.docConn)
	d.say("%s up: shardd (pid %d) documents %s; recoverd (pid %d) control %s, peer %s, metrics http://%s/metrics",
		n.name, n.engine.PID(), docAddr, n.proc.PID(), n.grpcAddr, n.peerAddr, n.httpAddr)
	return nil
}

// stop ends a node, recoverd then its shardd: SIGTERM, or SIGKILL when
// kill (a crash).
func (d *demo) stop(n *demoNode, kill bool) {
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	for _, p := range []**launch.Process{&n.proc, &n.engine} {
		if *p != nil {
			(*p).Stop(sig, 15*time.Second)
			*p = nil
		}
	}
	for _, c := range []**grpc.ClientConn{&n.conn, &n.docConn} {
		if *c != nil {
			(*c).Close()
			*c = nil
		}
	}
}

func (d *demo) stopAll() {
	for _, n := range d.nodes {
		d.stop(n, false)
	}
}
