package main

import (
	"context"
	"path/filepath"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/internal/launch"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
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
		sd, err := launch.StartShardd(ctx, launch.SharddOptions{Bin: d.shardd, Name: n.name, Data: n.data,
			LogPath: filepath.Join(d.dir, n.name+"-shardd.log"), ReadyTimeout: 15 * time.Second})
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

// snapshot takes a snapshot of n's copy of the demo shard into the demo's
// repository. Embedded, recoverd takes it (SnapshotService). recoverd
// --engine does not create snapshots of an engine's shards yet, so in the
// sidecar mode n stops (SIGTERM: shardd closes the shard with its ops
// durable) and the demo snapshots its copy offline, as `recoverctl
// snapshot create` does; the failover that follows finds n gone.
func (d *demo) snapshot(ctx context.Context, n *demoNode) (*pb.CreateSnapshotResponse, error) {
	if n.engine == nil {
		return n.snap.CreateSnapshot(ctx, &pb.CreateSnapshotRequest{Shard: demoShard})
	}
	d.say("recoverd --engine does not take snapshots yet: %s stops and its copy is snapshotted offline", n.name)
	d.stop(n, false)
	repo, err := snapshot.OpenRepository("file://"+filepath.Join(d.dir, "repo"), snapshot.S3Options{})
	if err != nil {
		return nil, err
	}
	s, err := shardstore.Open(n.data, shardstore.ShardID{Index: demoShard.Index, Shard: int(demoShard.Shard)}, shardstore.Options{})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	start := time.Now()
	res, err := snapshot.Create(ctx, repo, s, snapshot.CreateOptions{})
	if err != nil {
		return nil, err
	}
	return &pb.CreateSnapshotResponse{Snapshot: &pb.SnapshotInfo{Id: res.Manifest.ID}, UploadedFiles: int64(res.UploadedFiles),
		UploadedBytes: res.UploadedBytes, Took: durationpb.New(time.Since(start))}, nil
}
