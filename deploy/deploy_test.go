package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/recoverd/recoverd/internal/testutil"
)

// The manifest and the Dockerfile are checked against the recoverd and
// shardd binaries built from this tree: every flag and RECOVERD_* variable
// exists, the values parse, the container ports are the listeners' ports,
// the probes and scrape annotations hit the HTTP listener, both containers
// share the data volume and the engine socket (shardd_test.go). No docker
// engine runs here, so the image itself is not built.

const manifestPath = "kubernetes/recoverd-sidecar.yaml"

type envVar struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		FieldRef *struct {
			FieldPath string `yaml:"fieldPath"`
		} `yaml:"fieldRef"`
		SecretKeyRef *struct {
			Name string `yaml:"name"`
			Key  string `yaml:"key"`
		} `yaml:"secretKeyRef"`
	} `yaml:"valueFrom"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
	GRPC *struct {
		Port int `yaml:"port"`
	} `yaml:"grpc"`
}

type mount struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
	ReadOnly  bool   `yaml:"readOnly"`
}

type volume struct {
	Name   string `yaml:"name"`
	Secret *struct {
		SecretName string `yaml:"secretName"`
	} `yaml:"secret"`
	EmptyDir *struct{} `yaml:"emptyDir"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Env     []envVar `yaml:"env"`
	Ports   []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	LivenessProbe   *probe  `yaml:"livenessProbe"`
	ReadinessProbe  *probe  `yaml:"readinessProbe"`
	VolumeMounts    []mount `yaml:"volumeMounts"`
	SecurityContext *struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
	} `yaml:"securityContext"`
}

type podSpec struct {
	SecurityContext *struct {
		RunAsNonRoot *bool `yaml:"runAsNonRoot"`
		RunAsUser    *int  `yaml:"runAsUser"`
	} `yaml:"securityContext"`
	Containers     []container `yaml:"containers"`
	InitContainers []container `yaml:"initContainers"`
	Volumes        []volume    `yaml:"volumes"`
}

type podTemplate struct {
	Metadata struct {
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	Spec podSpec `yaml:"spec"`
}

type object struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name        string            `yaml:"name"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	Spec struct {
		// Pod
		podSpec `yaml:",inline"`
		// StatefulSet, Deployment, DaemonSet
		Template             *podTemplate `yaml:"template"`
		VolumeClaimTemplates []struct {
			Metadata struct {
				Name string `yaml:"name"`
			} `yaml:"metadata"`
		} `yaml:"volumeClaimTemplates"`
		// Service
		Ports []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort any    `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

func readManifest(t *testing.T) []object {
	t.Helper()
	data, err := os.ReadFile(manifestPath)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(false)
	var out []object
	for {
		var o object
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", manifestPath, err)
		}
		if o.Kind == "" {
			t.Fatalf("%s: a document without kind", manifestPath)
		}
		out = append(out, o)
	}
}

// helpFlags lists the flags `<bin> --help` documents; required are flags
// it must find, to tell a parse that went wrong.
func helpFlags(t *testing.T, bin string, required ...string) map[string]bool {
	t.Helper()
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --help: %v\n%s", filepath.Base(bin), err, out)
	}
	flags := map[string]bool{}
	re := regexp.MustCompile(`^\s+-{1,2}([a-z0-9][a-z0-9-]*)`)
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			flags[m[1]] = true
		}
	}
	for _, f := range required {
		if !flags[f] {
			t.Fatalf("could not read the flags from %s --help (no --%s):\n%s", filepath.Base(bin), f, out)
		}
	}
	return flags
}

func envName(flag string) string {
	return "RECOVERD_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// expand replaces $(VAR) as Kubernetes does with the container's env,
// giving fields and secrets stand-in values.
func expand(s string, env map[string]string) string {
	return regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).ReplaceAllStringFunc(s, func(m string) string {
		if v, ok := env[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

func port(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return n
}

func under(p, dir string) bool {
	p, dir = path.Clean(p), path.Clean(dir)
	return p == dir || strings.HasPrefix(p, dir+"/")
}

func TestKubernetesManifestMatchesRecoverd(t *testing.T) {
	bin := testutil.Binary(t, "recoverd")
	flags := helpFlags(t, bin, "data", "engine", "grpc-addr", "peer-addr", "http-addr", "tls-cert", "token-file")
	objs := readManifest(t)

	var pod *podTemplate
	var claims []string
	var svcs []object
	for _, o := range objs {
		switch {
		case o.Spec.Template != nil:
			pod = o.Spec.Template
			for _, c := range o.Spec.VolumeClaimTemplates {
				claims = append(claims, c.Metadata.Name)
			}
		case o.Kind == "Pod":
			pod = &podTemplate{Spec: o.Spec.podSpec}
			pod.Metadata.Annotations = o.Metadata.Annotations
		case o.Kind == "Service":
			svcs = append(svcs, o)
		}
	}
	if pod == nil {
		t.Fatal("no pod template in the manifest")
	}
	var rd, storage *container
	all := append(pod.Spec.Containers, pod.Spec.InitContainers...) // a native sidecar is an init container
	for i := range all {
		switch all[i].Name {
		case "recoverd":
			rd = &all[i]
		case "shardd":
			storage = &all[i]
		default: // no placeholder: every container is one of the two
			t.Errorf("container %s is neither shardd nor recoverd", all[i].Name)
		}
	}
	if rd == nil || storage == nil {
		t.Fatal("the pod needs a recoverd container beside a shardd container")
	}
	if len(rd.Command) > 0 {
		t.Errorf("recoverd container overrides the image's entrypoint with %v", rd.Command)
	}

	// Every flag exists; no --insecure.
	for _, a := range rd.Args {
		if !strings.HasPrefix(a, "-") {
			continue // the value of the previous flag
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !flags[name] {
			t.Errorf("arg %q: recoverd has no flag --%s", a, name)
		}
		if name == "insecure" {
			t.Errorf("the example must not run with --insecure")
		}
	}
	// Every RECOVERD_* variable is one recoverd reads.
	envFlags := map[string]bool{"RECOVERD_CONFIG": true}
	for f := range flags {
		envFlags[envName(f)] = true
	}
	env := map[string]string{}
	for _, e := range rd.Env {
		v := e.Value
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
			v = "storage-0"
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			v = "secret-from-" + e.ValueFrom.SecretKeyRef.Name
		}
		env[e.Name] = v
		if strings.HasPrefix(e.Name, "RECOVERD_") && !envFlags[e.Name] {
			t.Errorf("env %s: recoverd reads no such variable", e.Name)
		}
	}

	// The values parse: recoverd --print-config with the container's args
	// and environment gives the effective configuration.
	args := make([]string, 0, len(rd.Args)+1)
	for _, a := range rd.Args {
		args = append(args, expand(a, env))
	}
	cmd := exec.Command(bin, append(args, "--print-config")...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("recoverd %s --print-config: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	var cfg map[string]string
	if err := yaml.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("--print-config output: %v\n%s", err, out)
	}
	if cfg["s3-secret-key"] != "<redacted>" {
		t.Errorf("the S3 secret from the secret is not in effect (or printed): %q", cfg["s3-secret-key"])
	}
	if cfg["node-id"] != "storage-0" {
		t.Errorf("node id %q, want the pod name", cfg["node-id"])
	}

	// Listeners: reachable from outside the pod (probes, peers, Prometheus),
	// each a container port, and nothing else exposed.
	ports := map[string]int{}
	for _, p := range rd.Ports {
		ports[p.Name] = p.ContainerPort
	}
	listenPorts := map[string]int{}
	var want []int
	for _, f := range []string{"grpc-addr", "peer-addr", "http-addr"} {
		addr := cfg[f]
		host, _, _ := net.SplitHostPort(addr)
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			t.Errorf("--%s %s is loopback: nothing outside the pod reaches it", f, addr)
		}
		listenPorts[f] = port(t, addr)
		want = append(want, port(t, addr))
	}
	var got []int
	for _, p := range rd.Ports {
		got = append(got, p.ContainerPort)
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("container ports %v, listeners %v", got, want)
	}
	httpPort := listenPorts["http-addr"]
	resolve := func(p any) int {
		switch v := p.(type) {
		case int:
			return v
		case string:
			if n, err := strconv.Atoi(v); err == nil {
				return n
			}
			if n, ok := ports[v]; ok {
				return n
			}
			t.Errorf("port name %q is not a port of the recoverd container", v)
		}
		return -1
	}
	for name, c := range map[string]struct {
		p    *probe
		path string
	}{"liveness": {rd.LivenessProbe, "/healthz"}, "readiness": {rd.ReadinessProbe, "/readyz"}} {
		if c.p == nil || c.p.HTTPGet == nil {
			t.Errorf("no %s probe over HTTP", name)
			continue
		}
		if c.p.HTTPGet.Path != c.path || resolve(c.p.HTTPGet.Port) != httpPort {
			t.Errorf("%s probe GET %s on port %v, want %s on %d", name, c.p.HTTPGet.Path, c.p.HTTPGet.Port, c.path, httpPort)
		}
	}
	ann := pod.Metadata.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != strconv.Itoa(httpPort) || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("scrape annotations %v, want scrape true, port %d, path /metrics", ann, httpPort)
	}
	sd := checkShardd(t, pod, rd, storage, cfg)
	for _, s := range svcs {
		for _, p := range s.Spec.Ports {
			if sd.targets(p.TargetPort) {
				continue
			}
			if tp := resolve(p.TargetPort); tp != listenPorts["grpc-addr"] && tp != listenPorts["peer-addr"] && tp != httpPort {
				t.Errorf("service %s port %s targets %v, neither a recoverd nor the shardd listener", s.Metadata.Name, p.Name, p.TargetPort)
			}
		}
	}

	// Files: TLS and token from secret volumes, data on the volume the
	// shardd container uses.
	secretVols := map[string]bool{}
	for _, v := range pod.Spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName != "" {
			secretVols[v.Name] = true
		}
	}
	mountOf := func(c *container, p string) (vol string, ok bool) {
		for _, m := range c.VolumeMounts {
			if under(p, m.MountPath) {
				return m.Name, true
			}
		}
		return "", false
	}
	for _, f := range []string{"tls-cert", "tls-key", "tls-ca", "token-file"} {
		if cfg[f] == "" {
			t.Errorf("--%s is not set: TLS and the token are required", f)
			continue
		}
		if vol, ok := mountOf(rd, cfg[f]); !ok || !secretVols[vol] {
			t.Errorf("--%s %s is not on a mounted secret volume", f, cfg[f])
		}
	}
	dataVol, ok := mountOf(rd, cfg["data"])
	if !ok {
		t.Fatalf("--data %s is on no volume", cfg["data"])
	}
	if !slices.Contains(claims, dataVol) && !slices.ContainsFunc(pod.Spec.Volumes, func(v volume) bool {
		return v.Name == dataVol && v.Secret == nil
	}) {
		t.Errorf("data volume %s is neither a claim nor a pod volume", dataVol)
	}
	if !slices.ContainsFunc(storage.VolumeMounts, func(m mount) bool {
		return m.Name == dataVol && !m.ReadOnly
	}) {
		t.Errorf("the shardd container does not share the data volume %s", dataVol)
	}
	if sc := pod.Spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("the pod does not require a non-root user")
	}
	if t.Failed() {
		return
	}

	// And recoverd starts with them, the secrets being files from
	// `recoverctl certs` and the listeners moved to free loopback ports
	// (the repository left out: no S3 here); the probes and the scrape
	// path answer on its HTTP listener.
	pki := filepath.Join(t.TempDir(), "pki")
	if out, err := exec.Command(testutil.Binary(t, "recoverctl"), "certs", "--out", pki, "--nodes", "storage-0").CombinedOutput(); err != nil {
		t.Fatalf("recoverctl certs: %v\n%s", err, out)
	}
	data, socket := startShardd(t, pod, storage, sd)
	nodeArgs := []string{"--engine=unix://" + socket}
	for _, a := range args {
		name, val, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch name {
		case "data", "grpc-addr", "peer-addr", "http-addr", "repo", "engine":
			continue // StartNode's own, and shardd's socket here
		}
		for _, m := range rd.VolumeMounts {
			if secretVols[m.Name] && under(val, m.MountPath) {
				a = "--" + name + "=" + filepath.Join(pki, strings.TrimPrefix(path.Clean(val), path.Clean(m.MountPath)+"/"))
			}
		}
		nodeArgs = append(nodeArgs, a)
	}
	node := testutil.StartNode(t, testutil.NodeOptions{Name: "storage-0", Data: data, Secure: true, Args: nodeArgs})
	for _, p := range []string{rd.LivenessProbe.HTTPGet.Path, rd.ReadinessProbe.HTTPGet.Path, ann["prometheus.io/path"]} {
		code, body := httpGet(t, "http://"+node.HTTPAddr+p)
		if code != http.StatusOK {
			t.Errorf("GET %s: %d %s", p, code, body)
		}
		if p == ann["prometheus.io/path"] && !strings.Contains(body, "recoverd_cleanup_removals_total") {
			t.Errorf("GET %s holds no recoverd metrics", p)
		}
	}
	if logs := node.LogTail(20); !strings.Contains(logs, "tls=true") && !strings.Contains(logs, `"tls":true`) {
		t.Errorf("node did not start with TLS:\n%s", node.LogTail(20))
	}
	if logs := node.LogTail(40); !strings.Contains(logs, socket) {
		t.Errorf("recoverd did not connect to shardd's socket %s:\n%s", socket, logs)
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
