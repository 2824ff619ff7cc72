package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigPrecedenceFileEnvFlags(t *testing.T) {
	file := writeFile(t, "recoverd.yaml", `
data: /from/file
node-id: file-node
max-recoveries: 5
max-outgoing: 4
throttle: 10MB
compression: true
cleanup-interval: 1m
upload-grace: 2h
`)
	env := map[string]string{
		"RECOVERD_NODE_ID":        "env-node",
		"RECOVERD_MAX_RECOVERIES": "7",
		"RECOVERD_MAX_OUTGOING":   "6",
		"RECOVERD_UPLOAD_GRACE":   "3h",
	}
	cfg, printCfg, err := loadConfig([]string{"--config", file, "--max-recoveries", "9", "--compression=false", "--log-level", "debug"},
		envOf(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if printCfg {
		t.Fatal("print-config set without the flag")
	}
	want := defaultConfig()
	want.Data = "/from/file"   // file only
	want.NodeID = "env-node"   // env over file
	want.MaxRecoveries = 9     // flag over env over file
	want.MaxOutgoing = 6       // env over file
	want.Throttle = 10_000_000 // file, with a unit
	want.Compression = false   // flag over file
	want.CleanupInterval = time.Minute
	want.UploadGrace = 3 * time.Hour // env over file
	want.LogLevel = "debug"
	if cfg != want {
		t.Fatalf("effective config\n got %+v\nwant %+v", cfg, want)
	}

	// RECOVERD_CONFIG names the file too; a flag left at its default does
	// not override the file.
	cfg, _, err = loadConfig(nil, envOf(map[string]string{"RECOVERD_CONFIG": file}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Data != "/from/file" || cfg.MaxRecoveries != 5 || cfg.GRPCAddr != defaultConfig().GRPCAddr {
		t.Fatalf("from RECOVERD_CONFIG: %+v", cfg)
	}
}

// TestSnapshotPolicyConfig: the policy's keys come from the YAML file, the
// environment and the flags like every other.
func TestSnapshotPolicyConfig(t *testing.T) {
	file := writeFile(t, "recoverd.yaml", `
snapshot-interval: 30m
snapshot-jitter: 0.25
snapshot-keep: 5
snapshot-lease-max-bytes: 2GiB
`)
	env := map[string]string{"RECOVERD_SNAPSHOT_SCOPE": "all", "RECOVERD_SNAPSHOT_MAX_AGE": "24h", "RECOVERD_SNAPSHOT_KEEP": "6"}
	cfg, _, err := loadConfig([]string{"--config", file, "--snapshot-keep", "7", "--max-snapshot-uploads", "3", "--snapshot-lease-max-ops", "5000"}, envOf(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	p := policyConfig(cfg, nil)
	if p.Interval != 30*time.Minute || p.Jitter != 0.25 || p.Keep != 7 || p.MaxAge != 24*time.Hour || p.Scope != "all" ||
		p.LeaseMaxOps != 5000 || p.LeaseMaxBytes != 2<<30 || cfg.MaxSnapshotUploads != 3 {
		t.Fatalf("policy %+v, max uploads %d", p, cfg.MaxSnapshotUploads)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrorsNameTheirSource(t *testing.T) {
	for name, c := range map[string]struct {
		args []string
		env  map[string]string
		file string
		want string
	}{
		"unknown file key": {file: "data: /x\nno-such-key: 1\n", want: `unknown key "no-such-key"`},
		"bad file value":   {file: "max-recoveries: many\n", want: "max-recoveries"},
		"bad YAML":         {file: "data: [unclosed\n", want: "config file"},
		"bad env value":    {env: map[string]string{"RECOVERD_LEASE_TTL": "soon"}, want: "RECOVERD_LEASE_TTL"},
		"bad flag value":   {args: []string{"--throttle", "fast"}, want: "--throttle"},
		"missing file":     {args: []string{"--config", "/nonexistent/recoverd.yaml"}, want: "config file"},
		"stray argument":   {args: []string{"serve"}, want: "unexpected arguments"},
	} {
		args := c.args
		if c.file != "" {
			args = append([]string{"--config", writeFile(t, "c.yaml", c.file)}, args...)
		}
		_, _, err := loadConfig(args, envOf(c.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", name, err, c.want)
		}
	}
}

func TestPrintConfigMasksSecretsAndRoundTrips(t *testing.T) {
	file := writeFile(t, "recoverd.yaml", "data: /data\ns3-secret-key: from-file-secret\nrepo: s3://bucket/prefix\n")
	var out, errb bytes.Buffer
	code := run([]string{"--config", file, "--print-config", "--node-id", "n7"},
		envOf(map[string]string{"RECOVERD_S3_ACCESS_KEY": "AKIA-visible", "RECOVERD_S3_SECRET_KEY": "env-secret"}), &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	text := out.String()
	for _, secret := range []string{"env-secret", "from-file-secret"} {
		if strings.Contains(text, secret) {
			t.Fatalf("--print-config shows a secret:\n%s", text)
		}
	}
	var printed map[string]string
	if err := yaml.Unmarshal(out.Bytes(), &printed); err != nil {
		t.Fatalf("--print-config is not YAML: %v\n%s", err, text)
	}
	if printed["s3-secret-key"] != "<redacted>" || printed["s3-access-key"] != "AKIA-visible" || printed["node-id"] != "n7" ||
		printed["data"] != "/data" || printed["repo"] != "s3://bucket/prefix" {
		t.Fatalf("--print-config:\n%s", text)
	}
	for _, o := range options {
		if _, ok := printed[o.name]; !ok {
			t.Errorf("--print-config lacks %s", o.name)
		}
	}
	// The output, secrets aside, is a config file giving the same config.
	delete(printed, "s3-secret-key")
	back, err := yaml.Marshal(printed)
	if err != nil {
		t.Fatal(err)
	}
	again, _, err := loadConfig([]string{"--config", writeFile(t, "printed.yaml", string(back))}, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	orig, _, err := loadConfig([]string{"--config", file, "--node-id", "n7"}, envOf(map[string]string{"RECOVERD_S3_ACCESS_KEY": "AKIA-visible"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	orig.S3SecretKey = ""
	if again != orig {
		t.Fatalf("printed config does not load back:\n got %+v\nwant %+v", again, orig)
	}
}

func TestRunExitCodes(t *testing.T) {
	for name, c := range map[string]struct {
		args []string
		code int
		want string
	}{
		"help":                  {[]string{"--help"}, 0, "--cleanup-interval duration"},
		"no data":               {[]string{"--insecure"}, 2, "--data is required"},
		"bad flag":              {[]string{"--no-such-flag"}, 2, "no-such-flag"},
		"zero grace":            {[]string{"--data", t.TempDir(), "--insecure", "--upload-grace", "0s"}, 2, "--upload-grace must be positive"},
		"zero deletion delay":   {[]string{"--data", t.TempDir(), "--insecure", "--deletion-delay", "0s"}, 2, "--deletion-delay must be positive"},
		"negative interval":     {[]string{"--data", t.TempDir(), "--insecure", "--cleanup-interval", "-1m"}, 2, "--cleanup-interval"},
		"insecure off loopback": {[]string{"--data", t.TempDir(), "--insecure", "--grpc-addr", "0.0.0.0:7400"}, 2, "refused on 0.0.0.0:7400"},
		"no TLS":                {[]string{"--data", t.TempDir()}, 2, "TLS is required"},
		"bad log level":         {[]string{"--data", t.TempDir(), "--insecure", "--log-level", "loud"}, 2, "--log-level"},
		"bad snapshot scope":    {[]string{"--data", t.TempDir(), "--insecure", "--snapshot-scope", "replicas"}, 2, "--snapshot-*"},
		"jitter above 1":        {[]string{"--data", t.TempDir(), "--insecure", "--snapshot-jitter", "2"}, 2, "jitter 2 is not between 0 and 1"},
		"max age below interval": {[]string{"--data", t.TempDir(), "--insecure", "--snapshot-interval", "1h", "--snapshot-max-age", "10m"}, 2,
			"max age 10m0s is shorter than the interval"},
	} {
		var out, errb bytes.Buffer
		code := run(c.args, envOf(nil), &out, &errb)
		if code != c.code || !strings.Contains(out.String()+errb.String(), c.want) {
			t.Errorf("%s: exit %d, want %d with %q; output:\n%s%s", name, code, c.code, c.want, out.String(), errb.String())
		}
	}
}
