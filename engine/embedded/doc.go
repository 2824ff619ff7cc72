// Package embedded runs the reference engine (package shardstore) inside
// recoverd's process, the default: Engine implements the engine contract
// (package engine) over a Registry of the node's shards, and passes its
// acceptance suite (engine/enginetest).
//
// The Registry is the node-level half of the reference engine: it learns
// every shard on disk at start from its directory (Discover; each is then
// opened once in the background, to clean what a crash left and find those
// that do not open, and closed again), opens a shard on its first access
// and closes it
// once idle (Limits: at most 512 open by default, fewer under a small
// descriptor limit, none kept idle past 30 s; a shard in use is never
// closed), keeps the state of those that do not
// open (unavailable: a read error, a lock held, retried on the next
// access; corrupt: proven damage, moved to <data>/quarantine/ by the next
// recovery onto the node, never deleted), opens a recovery's target
// without a commit when the node does not hold the shard, removes such
// targets when their recovery ends unpublished (and, at start, those
// recoveries left), and holds the write refusals of running recoveries,
// which it applies to a shard whenever it opens. The document API (today
// recoverd's ShardService) uses its shards directly.
//
// Engine adds what the contract says and shardstore leaves to its caller:
// handles that stay valid while the registry closes their shard idle (each
// call opens it again and keeps it open until it returns) and answer
// ErrClosed once the copy is removed, moved aside or the engine closed,
// pins with a
// TTL (a timer per pin, stopped by Release or Close), ops read in batches
// within one history, input checked before it touches a path, and lease
// expiry folded into Sweep. Paths it hands out are shardstore's, absolute:
// recoverd and the engine share the process. HandOff turns the recovery's
// lease into the copy's, "copy-<node>", held by the copy and living for
// shardstore.Options.CopyRetention (default 12 hours) without an
// acknowledgement. The reference engine's replication is whoever applies
// a primary's ops to its replicas (tests, the demo: ShardService.Apply on
// the replica); it acknowledges each replica's local checkpoint to the
// primary (ShardService.AckReplica, shardstore.Shard.AckCopy), which
// renews the copy's lease and raises it to checkpoint+1.
//
// Registry.RegisterMetrics exports what the registry's shards hold
// (metrics.go): shards by state, retention leases and how close the first
// is to expiring. They are the engine's data: recoverd registers them when
// it runs the reference engine in process.
package embedded
