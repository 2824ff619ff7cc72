// Package deploy holds the container image (Dockerfile: recoverd, shardd
// and recoverctl), an example Kubernetes manifest running shardd and
// recoverd --engine as two containers of a storage StatefulSet's pods
// (sharing the data volume and the engine socket), a Grafana dashboard and
// Prometheus alert rules; its tests check them against the recoverd and
// shardd binaries of this tree (flags, environment variables, ports,
// probes, shared volumes and socket; both processes started with the
// manifest's flags; the metrics a live node exports) and the rules with
// promtool. See README.md.
package deploy
