package embedded

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"

	"github.com/recoverd/recoverd/shardstore"
)

// Discover learns the shards on disk from their directories (no shard is
// opened: a node of 100,000 shards serves at once) and starts the scan:
// in the background, every shard is opened once, one at a time, and
// closed again. Opening cleans what a crash left (temp files, files no
// commit references; the staging of recoveries that do not resume goes
// with Options.KeepStaging unset) and finds the shards that do not open,
// reported unavailable or corrupt as the scan reaches them. Until then a
// shard is listed from its commit point and opens on its first access like
// any other. A directory without a commit is no shard (SweepUncommitted
// removes it).
func (r *Registry) Discover() error {
	ids, err := shardDirs(r.dataDir)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.scanDone != nil {
		return nil
	}
	for _, id := range ids {
		if r.shards[id] == nil {
			r.shards[id] = &entry{id: id}
		}
	}
	r.scanDone = make(chan struct{})
	go r.scan(ids)
	return nil
}

// OpenAll is Discover, returning once the scan has opened every shard.
func (r *Registry) OpenAll() error {
	if err := r.Discover(); err != nil {
		return err
	}
	r.mu.Lock()
	done := r.scanDone
	r.mu.Unlock()
	<-done
	return nil
}

// Unscanned is how many shards on disk the scan has not reached yet.
func (r *Registry) Unscanned() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.shards {
		if !e.scanned {
			n++
		}
	}
	return n
}

// ScanDone is closed once the scan Discover started has opened every
// shard (nil before Discover).
func (r *Registry) ScanDone() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.scanDone
}

// scan opens, and closes again unless something uses it, every shard of
// ids not opened yet.
func (r *Registry) scan(ids []shardstore.ShardID) {
	defer close(r.scanDone)
	var unavailable, corrupt int
	for _, id := range ids {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return
		}
		e := r.shards[id]
		if e == nil || e.scanned || e.s != nil || e.opening {
			r.mu.Unlock()
			continue
		}
		got, err := r.openLocked(id, false, false)
		switch {
		case err == nil:
			r.closeEntryLocked(got, 0) // unless in use
		case errors.Is(err, shardstore.ErrNotFound):
			delete(r.shards, id) // no commit: not a shard
		case errors.Is(err, shardstore.ErrCorrupt):
			corrupt++
		default:
			unavailable++
		}
		r.mu.Unlock()
	}
	if unavailable+corrupt > 0 {
		r.log.Warn("some shards did not open", "shards", len(ids), "unavailable", unavailable, "corrupt", corrupt)
	}
	r.log.Debug("every shard on disk opened once", "shards", len(ids))
}

// shardDirs lists the shard directories under dataDir/shards (commit or
// not).
func shardDirs(dataDir string) ([]shardstore.ShardID, error) {
	root := filepath.Join(dataDir, "shards")
	indices, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []shardstore.ShardID
	for _, ix := range indices {
		if !ix.IsDir() || shardstore.ValidateName(ix.Name()) != nil {
			continue
		}
		dirs, err := os.ReadDir(filepath.Join(root, ix.Name()))
		if err != nil {
			return nil, err
		}
		for _, d := range dirs {
			n, err := strconv.Atoi(d.Name())
			id := shardstore.ShardID{Index: ix.Name(), Shard: n}
			if err == nil && d.IsDir() && id.Validate() == nil {
				out = append(out, id)
			}
		}
	}
	return out, nil
}
