// Package embedded runs the reference engine (package shardstore) inside
// recoverd's process: the registry of the shards open on the node, their
// states (open, unavailable, corrupt), the quarantine of a copy proven
// corrupt when a recovery replaces it, and the copies recoveries create
// without a commit.
package embedded
