// Package deploy holds the container image (Dockerfile) and an example
// Kubernetes manifest running recoverd as a sidecar of a storage
// StatefulSet; its tests check both against the recoverd binary of this
// tree (flags, environment variables, ports, probes). See README.md.
package deploy
