// Package integration holds the multi-process tests: real recoverd,
// shardd and MinIO processes on loopback (bin/ built by `make build`,
// MinIO by `make minio`), started by internal/launch and
// internal/testutil, in the embedded and in the sidecar mode
// (modes_test.go). Every test ends with the shared checks: nothing lost,
// nothing left, the copy equals its source.
package integration
