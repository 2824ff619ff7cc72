// Package launch starts child processes, recoverd nodes above all, for the
// demo (recoverctl demo), the benchmarks (bench/) and the tests
// (internal/testutil): one starter that sends a process's output to a log
// file, one readiness wait that gives up with the log's tail when the
// process exits or stays unready, one way to stop it by PID, and one
// FreeAddr.
//
// StartRecoverd passes a node its data directory, node id and listeners
// (free loopback ports unless given, picked again when another process
// takes one first) and waits until its control API answers gRPC health
// checks SERVING, or, for a node serving TLS, until /readyz answers 200 on
// its plaintext HTTP listener.
//
// StartShardd starts shardd, the reference engine process, on a data
// directory, with its document API on a free loopback port unless given
// and its engine socket at <data>/engine.sock unless given, and waits
// until the API answers health checks SERVING and the socket takes
// connections; EngineTarget is the --engine address of a recoverd beside
// it.
//
// Nothing here knows shards, plans or repositories: only how to run a
// process and ask it whether it serves.
package launch
