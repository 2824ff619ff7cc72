package embedded

// Primary reports whether the copy acts as its shard's primary (it was not
// last written to as a replica; shardstore.Shard.Replica). It is not part
// of the engine contract: the snapshot policy asks it of engines that
// implement it, to snapshot primaries only.
func (s *shard) Primary() bool { return !s.s.Replica() }
