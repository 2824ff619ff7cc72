package deploy

import (
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestDockerfile checks the image's recipe, as no docker engine runs here:
// a static multi-stage build of recoverd and shardd, a distroless final
// stage as a non-root user, recoverd the entrypoint, the manifest's ports
// exposed.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	type stage struct {
		from  string
		lines []string
	}
	var stages []stage
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(strings.ToUpper(l), "FROM ") {
			stages = append(stages, stage{from: l})
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("instruction before FROM: %s", l)
		}
		stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, l)
	}
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage build, got %d stage(s)", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	if !strings.Contains(build.from, "golang:1.26") {
		t.Errorf("build stage %q: want golang:1.26 (go.mod says go 1.26)", build.from)
	}
	buildText := strings.Join(build.lines, "\n")
	for _, cmd := range []string{"./cmd/recoverd", "./cmd/shardd"} {
		if !strings.Contains(buildText, "CGO_ENABLED=0") || !strings.Contains(buildText, cmd) {
			t.Errorf("build stage does not build %s statically:\n%s", cmd, buildText)
		}
	}
	if !strings.Contains(final.from, "distroless/static") && !strings.Contains(final.from, "scratch") {
		t.Errorf("final stage %q: want distroless/static or scratch", final.from)
	}
	var user, entry string
	var expose, copied []string
	for _, l := range final.lines {
		f := strings.Fields(l)
		switch strings.ToUpper(f[0]) {
		case "COPY":
			copied = append(copied, f[1:]...)
		case "USER":
			user = f[1]
		case "ENTRYPOINT":
			entry = l
		case "EXPOSE":
			expose = append(expose, f[1:]...)
		}
	}
	if uid, _, _ := strings.Cut(user, ":"); uid != "65532" && uid != "nonroot" {
		t.Errorf("final stage runs as %q, want a non-root user (65532)", user)
	}
	if !strings.Contains(entry, "recoverd") {
		t.Errorf("ENTRYPOINT %q does not run recoverd", entry)
	}
	// The manifest's containers run binaries the image holds.
	for _, bin := range []string{"recoverd", "shardd"} {
		if !slices.ContainsFunc(copied, func(c string) bool { return path.Base(c) == bin }) {
			t.Errorf("the final stage does not copy %s: COPY %v", bin, copied)
		}
	}
	// The exposed ports are the manifest's container ports (recoverd's
	// and shardd's).
	var rdPorts []string
	for _, o := range readManifest(t) {
		if o.Spec.Template == nil {
			continue
		}
		for _, c := range o.Spec.Template.Spec.Containers {
			if c.Name == "recoverd" || c.Name == "shardd" {
				for _, p := range c.Ports {
					rdPorts = append(rdPorts, strconv.Itoa(p.ContainerPort))
				}
			}
		}
	}
	slices.Sort(expose)
	slices.Sort(rdPorts)
	if !slices.Equal(expose, rdPorts) {
		t.Errorf("EXPOSE %v, manifest container ports %v", expose, rdPorts)
	}
	for _, f := range []string{"../go.mod", "../go.sum", "../cmd/recoverd/main.go", "../cmd/shardd/main.go"} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("the build copies %s: %v", f, err)
		}
	}
}
