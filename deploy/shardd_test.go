package deploy

import (
	"context"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/recoverd/recoverd/internal/launch"
	"github.com/recoverd/recoverd/internal/testutil"
)

// shardd is what the manifest's shardd container runs with.
type shardd struct {
	args            map[string]string // flag name -> value, every flag shardd has
	data, socket    string
	port            int    // of --listen
	portName        string // its container port's name
	socketVol       string // the volume the socket is on
	socketMountPath string // where that volume is mounted (the same in both containers)
}

// targets reports whether a Service's targetPort is shardd's listener.
func (s shardd) targets(p any) bool {
	switch v := p.(type) {
	case int:
		return v == s.port
	case string:
		n, err := strconv.Atoi(v)
		return v == s.portName || err == nil && n == s.port
	}
	return false
}

// mountFor is the mount of c that holds p (the deepest one).
func mountFor(c *container, p string) (mount, bool) {
	var best mount
	found := false
	for _, m := range c.VolumeMounts {
		if under(p, m.MountPath) && (!found || len(m.MountPath) > len(best.MountPath)) {
			best, found = m, true
		}
	}
	return best, found
}

// checkShardd checks the shardd container against `shardd --help` and
// against recoverd's effective configuration cfg: the flags exist, the
// document API listens beyond loopback on its container port with gRPC
// probes on it, both containers mount the data volume at the same path and
// --data is the same, and recoverd's --engine is shardd's --socket, on a
// volume (an emptyDir or the data volume) both mount at the same path.
func checkShardd(t *testing.T, pod *podTemplate, rd, sd *container, cfg map[string]string) shardd {
	t.Helper()
	bin := testutil.Binary(t, "shardd")
	flags := helpFlags(t, bin, "data", "listen", "socket", "socket-mode")
	out := shardd{args: map[string]string{}}
	if len(sd.Command) != 1 || path.Base(sd.Command[0]) != "shardd" {
		t.Errorf("shardd container command %v: want the image's shardd binary", sd.Command)
	}
	if sd.Image != rd.Image {
		t.Errorf("shardd image %s, recoverd image %s: deploy/Dockerfile builds both into one", sd.Image, rd.Image)
	}
	for _, e := range sd.Env {
		if strings.HasPrefix(e.Name, "RECOVERD_") {
			t.Errorf("env %s on shardd: shardd reads no environment", e.Name)
		}
	}
	for _, a := range sd.Args {
		name, val, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") || !ok {
			t.Errorf("shardd arg %q: write flags as --name=value", a)
			continue
		}
		if !flags[name] {
			t.Errorf("arg %q: shardd has no flag --%s", a, name)
		}
		out.args[name] = val
	}
	out.data, out.socket = out.args["data"], out.args["socket"]
	if out.socket == "" && out.data != "" {
		out.socket = path.Join(out.data, "engine.sock")
	}
	if out.data != cfg["data"] {
		t.Errorf("shardd --data %q, recoverd --data %q: both must name the shards' directory", out.data, cfg["data"])
	}
	// The data volume at the same path in both: the engine hands recoverd
	// paths under its own --data.
	sdData, ok1 := mountFor(sd, out.data)
	rdData, ok2 := mountFor(rd, cfg["data"])
	if !ok1 || !ok2 || sdData.Name != rdData.Name || sdData.MountPath != rdData.MountPath || sdData.ReadOnly || rdData.ReadOnly {
		t.Errorf("data: shardd mounts %+v, recoverd %+v; want one volume, read-write, at the same path", sdData, rdData)
	}
	// The socket: recoverd dials what shardd listens on.
	if want := "unix://" + out.socket; cfg["engine"] != want {
		t.Errorf("recoverd --engine %q, want %q (shardd's --socket)", cfg["engine"], want)
	}
	sdSock, ok1 := mountFor(sd, out.socket)
	rdSock, ok2 := mountFor(rd, out.socket)
	if !ok1 || !ok2 || sdSock.Name != rdSock.Name || sdSock.MountPath != rdSock.MountPath {
		t.Errorf("socket %s: shardd mounts %+v, recoverd %+v; want one volume at the same path in both", out.socket, sdSock, rdSock)
	}
	out.socketVol, out.socketMountPath = sdSock.Name, sdSock.MountPath
	if sdSock.Name != sdData.Name && !slices.ContainsFunc(pod.Spec.Volumes, func(v volume) bool {
		return v.Name == sdSock.Name && v.EmptyDir != nil
	}) {
		t.Errorf("socket volume %s is neither an emptyDir nor the data volume", sdSock.Name)
	}
	if len(out.socket) >= 108 {
		t.Errorf("socket path %s is longer than a Unix socket path may be", out.socket)
	}
	// The document API: beyond loopback, a container port, probed.
	listen := out.args["listen"]
	host, p, err := net.SplitHostPort(listen)
	if err != nil {
		t.Fatalf("shardd --listen %q: %v", listen, err)
	}
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		t.Errorf("shardd --listen %s is loopback: no client outside the pod reaches it", listen)
	}
	out.port, _ = strconv.Atoi(p)
	if len(sd.Ports) != 1 || sd.Ports[0].ContainerPort != out.port {
		t.Errorf("shardd container ports %+v, want exactly --listen's port %d", sd.Ports, out.port)
	} else {
		out.portName = sd.Ports[0].Name
	}
	for name, pr := range map[string]*probe{"liveness": sd.LivenessProbe, "readiness": sd.ReadinessProbe} {
		if pr == nil || pr.GRPC == nil || pr.GRPC.Port != out.port {
			t.Errorf("shardd %s probe: want a gRPC health probe on port %d", name, out.port)
		}
	}
	return out
}

// startShardd starts shardd with the manifest's flags, the data volume and
// the socket's volume moved to temporary directories and the document API
// to a free loopback port, and returns the data directory and the socket.
func startShardd(t *testing.T, pod *podTemplate, sd *container, s shardd) (data, socket string) {
	t.Helper()
	root := t.TempDir()
	data = filepath.Join(root, "data")
	socket = filepath.Join(root, "sock", strings.TrimPrefix(path.Clean(s.socket), path.Clean(s.socketMountPath)+"/"))
	if under(s.socket, s.data) {
		socket = filepath.Join(data, strings.TrimPrefix(path.Clean(s.socket), path.Clean(s.data)+"/"))
	}
	if err := os.MkdirAll(filepath.Dir(socket), 0o700); err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, a := range sd.Args {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		switch name {
		case "data", "listen", "socket":
			continue // StartShardd's own
		}
		args = append(args, a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := launch.StartShardd(ctx, launch.SharddOptions{Bin: testutil.Binary(t, "shardd"), Name: "storage-0", Data: data,
		Socket: socket, LogPath: filepath.Join(root, "shardd.log"), Args: args})
	if err != nil {
		t.Fatalf("shardd with the manifest's flags: %v", err)
	}
	t.Cleanup(func() { p.Stop(syscall.SIGTERM, 20*time.Second) })
	return data, socket
}
