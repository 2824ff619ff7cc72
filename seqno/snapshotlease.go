package seqno

// SnapshotLeaseID is the id of the snapshot retention lease: the lease a
// copy holds on itself from the latest snapshot's local checkpoint + 1, so
// that the snapshot plus the ops above it can build a new copy without
// reading files off the source. The snapshot policy (snapshot/lifecycle)
// takes and advances it; the planner names it when it stopped at its bound.
const SnapshotLeaseID = "snapshot-retention"
