package main

import (
	"bytes"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/recoverd/recoverd/internal/buildinfo"
	"github.com/recoverd/recoverd/internal/testutil"
)

// TestVersion: --version exits 0 and prints the build this process is
// (in-process), and the real binary prints what `go version -m` reads out
// of it: its module version, its VCS revision when the build stamped one,
// and its Go version.
func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--version"}, envOf(nil), &out, &errb); code != 0 || out.String() != "recoverd "+versionLine()+"\n" {
		t.Fatalf("exit %d, output %q %q", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), buildinfo.Read().GoVersion) || !strings.Contains(out.String(), "shard writer version 0.1.0, format 1") {
		t.Fatalf("--version: %q", out.String())
	}

	bin := testutil.Binary(t, "recoverd")
	got, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	m, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	field := func(re string) string {
		if s := regexp.MustCompile(re).FindSubmatch(m); s != nil {
			return string(s[1])
		}
		return ""
	}
	goVersion := field(`^\S+: (go\S+)`)
	version := field(`(?m)^\s+mod\s+github.com/recoverd/recoverd\s+(\S+)`)
	revision := field(`(?m)^\s+build\s+vcs.revision=(\S+)`)
	want := "recoverd " + version
	if revision != "" {
		want += " (revision " + revision
	}
	if goVersion == "" || version == "" || !strings.HasPrefix(string(got), want) || !strings.Contains(string(got), " "+goVersion+"; ") {
		t.Fatalf("%s --version = %q; go version -m says version %q, revision %q, %s", bin, got, version, revision, goVersion)
	}
	t.Logf("%s", got)
}
