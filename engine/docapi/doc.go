// Package docapi is the reference engine's document API: ShardService
// (api/recoverdv1) on the shards of an embedded.Registry. Clients index,
// delete, get, flush, merge, promote and read the stats of shards with it;
// tests and the demo replicate by applying a primary's ops to its replicas
// (Apply). It is the reference engine's own front door, not part of the
// engine contract: shardd serves it beside EngineService, and recoverd
// serves it in its embedded mode (no --engine).
//
// It lives apart from engine/embedded so that the contract's in-process
// implementation stays free of gRPC and wire types, and apart from cmd/ so
// that both binaries serve the same code.
//
// A shard a recovery is replacing takes no primary writes, merges or
// promotions until it ends: the recovery has the engine refuse them
// (Engine.RefuseWrites) and they answer FailedPrecondition with the
// RECOVERY_RUNNING reason, naming the recovery. Replicated ops (Apply) are
// accepted: the recovery's catch-up fetches them from the source anyway.
package docapi
