// Package deploy holds the container image (Dockerfile), an example
// Kubernetes manifest running recoverd as a sidecar of a storage
// StatefulSet, a Grafana dashboard and Prometheus alert rules; its tests
// check them against the recoverd binary of this tree (flags, environment
// variables, ports, probes; the metrics a live node exports) and the rules
// with promtool. See README.md.
package deploy
