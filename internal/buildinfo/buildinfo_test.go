package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

func TestFrom(t *testing.T) {
	stamped := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/recoverd/recoverd", Version: "v0.0.0-20261201201405-23c8f0e96d22+dirty"},
		Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "23c8f0e96d228035ffc4eaab91cb933997541036"},
			{Key: "vcs.time", Value: "2026-12-01T20:14:05Z"}, {Key: "vcs.modified", Value: "true"}}}
	for _, c := range []struct {
		bi   *debug.BuildInfo
		ok   bool
		want Info
		line string
	}{
		{stamped, true, Info{Version: "v0.0.0-20261201201405-23c8f0e96d22+dirty", Revision: "23c8f0e96d228035ffc4eaab91cb933997541036",
			Time: "2026-12-01T20:14:05Z", Modified: true, GoVersion: "go1.26.8"},
			"v0.0.0-20261201201405-23c8f0e96d22+dirty (revision 23c8f0e96d228035ffc4eaab91cb933997541036, modified, 2026-12-01T20:14:05Z) go1.26.8"},
		{&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, true, Info{Version: "(devel)", GoVersion: "go1.26.8"}, "(devel) go1.26.8"},
		{nil, false, Info{Version: "unknown", GoVersion: runtime.Version()}, "unknown " + runtime.Version()},
	} {
		got := From(c.bi, c.ok)
		if got != c.want || got.String() != c.line {
			t.Errorf("From = %+v %q, want %+v %q", got, got.String(), c.want, c.line)
		}
	}
	// A test binary has build information too.
	if i := Read(); i.GoVersion != runtime.Version() || i.Version == "" {
		t.Errorf("Read() = %+v", i)
	}
}

func TestRegister(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	Register(reg, Info{Version: "v1.2.3", Revision: "abc", GoVersion: "go1.26.8"})
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 {
		t.Fatalf("%d families, %v", len(mfs), err)
	}
	m := mfs[0].GetMetric()[0]
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if mfs[0].GetName() != "recoverd_build_info" || m.GetGauge().GetValue() != 1 || labels["version"] != "v1.2.3" || labels["revision"] != "abc" || labels["goversion"] != "go1.26.8" {
		t.Fatalf("%v", mfs[0])
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil || len(problems) > 0 {
		t.Fatalf("promlint: %v %v", problems, err)
	}
	if !strings.HasSuffix(mfs[0].GetName(), "_info") {
		t.Fatal("an info metric's name ends in _info")
	}
}
