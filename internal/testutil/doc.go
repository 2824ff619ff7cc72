// Package testutil holds test servers and helpers shared by the tests of
// several packages. Nothing in it is domain-specific.
//
// StartMinIO runs a real MinIO server (never a mock) on a free loopback
// port with a temporary data directory, so tests can exercise S3 code
// against the real thing, including faults: Stop, Kill, Pause (SIGSTOP),
// Resume (SIGCONT) and Restart. StartMinIOCluster runs MinIO in
// distributed erasure-coded mode instead (4 servers on loopback, one drive
// each), to test what the loss of one server, or of a quorum, does.
package testutil
