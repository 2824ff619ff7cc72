// Package buildinfo says which build of recoverd is running, from the
// build information the Go toolchain embeds in every binary
// (runtime/debug.ReadBuildInfo): the main module's version (a tag, a
// pseudo-version, or "(devel)"), the VCS revision, its time and whether
// the tree was modified (when the build stamped them: -buildvcs, in a git
// clone; Go does not stamp a build in a git worktree), and the Go version.
// recoverd --version and recoverctl version print it, and recoverd exports
// it as recoverd_build_info{version,revision,goversion} 1.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Info describes one build.
type Info struct {
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
	Time      string `json:"time,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go_version"`
}

// Read returns this binary's build information.
func Read() Info { return From(debug.ReadBuildInfo()) }

// From reads an Info out of debug.ReadBuildInfo's answer. Without build
// information (ok false) the version is "unknown".
func From(bi *debug.BuildInfo, ok bool) Info {
	if !ok || bi == nil {
		return Info{Version: "unknown", GoVersion: runtime.Version()}
	}
	i := Info{Version: bi.Main.Version, GoVersion: bi.GoVersion}
	if i.Version == "" {
		i.Version = "(devel)"
	}
	if i.GoVersion == "" {
		i.GoVersion = runtime.Version()
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Revision = s.Value
		case "vcs.time":
			i.Time = s.Value
		case "vcs.modified":
			i.Modified = s.Value == "true"
		}
	}
	return i
}

// String is one line: "<version> (revision <rev>[, modified], <time>) <go version>".
func (i Info) String() string {
	var b strings.Builder
	b.WriteString(i.Version)
	if i.Revision != "" {
		fmt.Fprintf(&b, " (revision %s", i.Revision)
		if i.Modified {
			b.WriteString(", modified")
		}
		if i.Time != "" {
			b.WriteString(", " + i.Time)
		}
		b.WriteString(")")
	}
	b.WriteString(" " + i.GoVersion)
	return b.String()
}

// Register exports i as recoverd_build_info{version,revision,goversion}
// with the value 1 on reg.
func Register(reg prometheus.Registerer, i Info) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "recoverd_build_info",
		Help: "The build of recoverd running: main module version, VCS revision (empty when not stamped) and Go version; always 1.",
	}, []string{"version", "revision", "goversion"})
	g.WithLabelValues(i.Version, i.Revision, i.GoVersion).Set(1)
	reg.MustRegister(g)
}
