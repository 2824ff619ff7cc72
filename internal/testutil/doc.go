// Package testutil holds test servers and helpers shared by the tests of
// several packages. Nothing in it is domain-specific.
//
// StartMinIO runs a real MinIO server (never a mock) on a free loopback
// port with a temporary data directory, so tests can exercise S3 code
// against the real thing, including faults: Stop, Kill, Pause (SIGSTOP),
// Resume (SIGCONT) and Restart. StartMinIOCluster runs MinIO in
// distributed erasure-coded mode instead (4 servers on loopback, one drive
// each), to test what the loss of one server, or of a quorum, does.
//
// StartNode runs a recoverd node of this tree (Binary) on free loopback
// ports, started and awaited by internal/launch as the demo and the
// benchmarks start theirs, with Stop, Kill, Pause, Resume and Restart.
//
// StartProxy puts a TCP proxy between two processes to cut, blackhole,
// slow down or delay the network between them. It is Shopify's toxiproxy
// (github.com/Shopify/toxiproxy/v2), run in the test's process as a
// library: its Proxy, and its timeout, bandwidth and latency toxics. Two
// small toxics are this package's own, registered with toxiproxy:
//
//   - refuse, for Proxy.Refuse. toxiproxy refuses connections only by
//     stopping its listener, which also closes the open ones, and no toxic
//     of its own tells new connections from open ones; Refuse closes new
//     connections as soon as they are accepted and leaves open ones alone.
//   - count, for Proxy.Stats: toxiproxy counts bytes only when a
//     connection ends, and not connections.
//
// To close connections (Cut, leaving a blackhole, Close) Proxy stops
// toxiproxy's listener under the timeout toxic and starts it again on the
// same port: toxiproxy has no call that closes connections, and a toxic
// still passing data on when its connection is closed waits forever.
package testutil
