// Package remote is the engine contract (package engine) across a process
// boundary: EngineService (api/recoverdv1/engine.proto) over gRPC on a
// Unix domain socket. Server serves any engine.Engine (shardd serves the
// reference engine with it); Dial returns a Client, an engine.Engine that
// recoverd drives exactly as the engine in its own process. The acceptance
// suite (engine/enginetest) runs on the Client, through a Server, on the
// reference engine.
//
// File bytes never cross the socket. A Pin answers the absolute paths of
// the pinned files, which recoverd opens on the shared data volume; a
// Staging answers its directory, where recoverd writes the files it
// recovers; the engine publishes them in place. The socket carries
// metadata, ops (Apply, AppendOps, ReadOps) and decisions. The paths are
// the engine's: recoverd and the engine mount the data volume at the same
// path (in Kubernetes, one volume mounted at one path in both containers).
//
// Errors cross through api/rpcerr: the server answers ToStatus of the
// engine's error, which names every contract sentinel it wraps, and the
// client wraps FromStatus of the answer, so errors.Is(err, engine.ErrX)
// holds on the client as in the engine. A transport error (the engine
// process gone) wraps no sentinel: it is a gRPC Unavailable, which
// recoverd's retry policy retries.
//
// What a client that goes away leaves. Each Client holds one session (a
// Session stream) at a time; the handles of shards, pins and stagings it
// gets belong to the session. When the session ends, because the client
// closed or its process died (the socket closes, and the server sees it at
// once), the server releases the session's pins, whatever their TTL (no
// one reads their paths any more), and suspends its stagings: their
// directories stay, and the recovery resumes from them (StartStaging with
// the same recovery id) or cleanup sweeps them (Shard.Sweep, unless named
// in keepStaging). Retention leases are durable and expire by their TTL;
// write refusals stay until ResumeWrites, so that a recovery whose recoverd
// died lets no write in that its resumed publish would drop. A Publish the
// engine started runs to its end even if its caller is gone: the copy is
// at its old commit or its new one. When the engine process restarts, the
// client opens a new session on its next call and the old handles answer
// ErrClosed (ask for the shard again), as a handle of a closed copy does.
package remote
