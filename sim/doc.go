// Command sim simulates a fleet of recoverd nodes rebuilding the shard
// copies a failure lost, against a snapshot repository with S3's request
// limits, and reports the time to full redundancy, the request rates
// against the store, where the bytes came from and how busy the nodes
// were. SCALE.md holds its results for 1,000 nodes x 1,000 shards and the
// command behind every table; `make sim` runs them all.
//
//	go run ./sim -fail rack:0                      # a rack of 50 of 1,000 nodes
//	go run ./sim -fail zone:0 -max-outgoing 8      # a zone, other settings
//	go run ./sim -fail rack:0 -vary throttle=0,100MB -vary use-snapshots=true,false
//	go run ./sim -fail none -snapshot-interval 1h  # the background load only
//	go run ./sim -scenario sim/testdata/cluster6.json -measured 95s   # calibration
//
// It is deterministic: no I/O but the optional -timeline file, no
// goroutines, every random draw from -seed. Control happens in events in
// time order; bytes move in fixed steps of -dt (1s) whose rates are set
// for the whole step, and an item (a file, a 16 MiB part) that ends
// inside a step hands the rest of the step to the lane's next item, so
// the step bounds the error of rates only, never of throughput.
//
// # What is modelled
//
// The fleet: nodes in racks (-rack-size) dealt to zones; every node holds
// -shards-per-node copies, the -copies of a shard in distinct zones (or
// racks), random nodes within them. Shard sizes follow -shard-size
// (rounded to 0.5% steps); a shard is -files-per-shard segment files, each
// -file-ratio of the one before. The failure (-fail) loses nodes; each
// lost copy with a surviving copy is rebuilt from the surviving copy of
// lowest index (the primary, or the replica promoted in its place) onto
// the live node with the fewest copies in another zone (-return spread),
// or onto the failed node coming back (same, same-with-data; a failure
// may name its own, nodes:1@same-with-data). The orchestrator starts every recovery at once after -detect, and starts a
// failed one again after -reissue.
//
// recoverd, as the code does it (recovery/, transfer/, snapshot/,
// cmd/recoverd/config.go): a FIFO queue per target for the
// --max-recoveries slots; a commit pin on the source for the whole
// recovery, at most --max-outgoing per source, a refused recovery giving
// its slot back, sleeping 200ms doubling to 5s (times a random factor
// with -pin-jitter), queueing again, failing once it has spent
// --pin-wait on refused asks and their sleeps (time queued for a slot
// does not count); snapshot.Latest
// (LIST the shard's manifests, GET the newest) before planning; the real
// planner (planner.Compute, on inputs built from the shard model) choosing
// peer, hybrid, snapshot or ops-only; peer files --parallel-files at a
// time, largest first; snapshot files through a node-wide FIFO of
// --max-snapshot-downloads places, each a HEAD then 16 MiB ranged GETs, 4
// at once; the op stream alongside; publish; the check (one call: by
// default what moved was hashed as it streamed; --verify-digest always
// reads the shard on both nodes).
// One --throttle bucket per node carries every byte the node sends and
// receives, peer (times -peer-wire-ratio for compression) and snapshot
// alike; NIC each way and disk (reads and writes) bound it too.
//
// The store: every request is counted against its partitioned prefix, the
// first -prefix-depth components of its key in the current layout
// (<index>/<shard>/blobs|snapshots/...) or the hashed one
// (<hash>/<index>/<shard>/...), and in total. Past -s3-get-rps in a second
// (5,500, S3's documented GET/HEAD limit; LIST counted with them) it
// answers 503 SlowDown, which the code retries with the repository's
// retry policy (retry.Repository: 100ms x1.5 to 5s, +-50%) until
// -s3-retry-budget passes without progress; then the repository has
// failed: a snapshot plan falls back to its peer plan, dropping what it
// staged, a hybrid plan hands its files not downloaded to the source, and
// a planning that fails goes to the peer.
// The store's bandwidth in total, per prefix, and per GET connection, and
// its latency are parameters. Background load is a steady rate spread
// evenly over the prefixes and served before recoveries: the cleanup
// sweep as the code runs it (cleanup.Sweeper: every node lists and reads
// the manifests, blobs and marks of each shard it holds a copy of, one
// request at a time; -cleanup-sweep all is the code before issue 16,
// which listed the whole repository and swept every shard in it)
// and, with -snapshot-interval, snapshot.Create and snapshot.GC of every
// shard (PUT and multipart POST per new file, DELETE of old ones).
//
// Checked every step (and by the tests): no node over its limits, no
// resource given more than its capacity, no prefix over its limit in any
// second, and per rebuilt copy the bytes moved less the bytes dropped by
// fallbacks equal what its final plan needed.
//
// # What is not
//
// Failures during the recovery (of sources, targets, the store), lost
// leases and re-planning, corrupt blobs, CPU (zstd, CRC), memory and file
// descriptors, TCP slow start and per-connection windows beyond
// -s3-stream-rate, writes by applications during the recovery (ops caught
// up after the files are a single call), S3's gradual partition splitting
// (the partitions are fixed by -prefix-depth for the whole run) and 503s
// due to anything but the request rate, the bandwidth snapshots and the
// sweep take, and an orchestrator that would throttle itself per node as
// Elasticsearch does (node_concurrent_recoveries): here every recovery is
// handed to recoverd at once and recoverd's own queues and limits apply.
//
// # Calibration
//
// -scenario reads a JSON object whose keys are the flag names (keys
// starting with _ are comments), so a small real cluster's parameters
// replay in one command; -measured takes its measured time to full
// redundancy and the report prints predicted against measured.
// sim/testdata/cluster6.json is the 6-node cluster of the integration
// test TestClusterEachNodeKilledInTurn (make cluster), with that test's
// settings; SCALE.md compares it with the test's measurements.
package main
