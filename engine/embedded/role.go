package embedded

import "context"

// Primary reports whether the copy acts as its shard's primary (it was not
// last written to as a replica; shardstore.Shard.Replica). It is not part
// of the engine contract: the snapshot policy asks it of engines that
// implement it, to snapshot primaries only. A copy that cannot be opened
// now is taken for a primary, as a copy of an engine that does not tell.
func (s *shard) Primary() bool {
	sh, done, err := s.use(context.Background())
	if err != nil {
		return true
	}
	defer done()
	return !sh.Replica()
}
