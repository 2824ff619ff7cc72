package shardstore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/internal/fsutil"
	"github.com/recoverd/recoverd/seqno"
)

// A commit point file is: u32 magic, u32 payload length, JSON payload,
// u32 CRC32C of everything before it. JSON keeps it readable with a hex
// dump and extensible; the checksum makes a damaged one detectable.
const (
	commitMagic  = 0x544d4352 // "RCMT"
	commitPrefix = "commit_"
	maxCommitLen = 256 << 20
)

// commitPoint is the content of one commit_<gen> file.
type commitPoint struct {
	Generation uint64     `json:"generation"`
	Files      []FileMeta `json:"files"`
	Data       CommitData `json:"data"`
	// OplogEpoch names the op log directory oplog/<epoch>/ that belongs to
	// this commit. A publish moves a staged op log into a new epoch and
	// switches to it with the commit, so ops of the old and the new content
	// never mix, whenever a crash strikes.
	OplogEpoch uint64 `json:"oplog_epoch"`
	// Terms maps each primary term of an op the shard holds or held to the
	// highest seqno of such an op: what Data.MaxTermAboveGlobalCheckpoint
	// is computed from as the global checkpoint moves. A commit published
	// by a recovery has none (the source tells only the highest term).
	Terms map[uint64]seqno.SeqNo `json:"terms,omitempty"`
}

func commitName(gen uint64) string { return fmt.Sprintf("%s%016d", commitPrefix, gen) }

func parseCommitName(name string) (uint64, bool) {
	if !strings.HasPrefix(name, commitPrefix) {
		return 0, false
	}
	g, err := strconv.ParseUint(name[len(commitPrefix):], 10, 64)
	return g, err == nil
}

func encodeCommit(c *commitPoint) ([]byte, error) {
	payload, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("shardstore: encode commit: %w", err)
	}
	b := make([]byte, 8, 12+len(payload))
	binary.LittleEndian.PutUint32(b[0:], commitMagic)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(payload)))
	b = append(b, payload...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// decodeCommit parses a commit point; damaged input is an ErrCorrupt error.
func decodeCommit(b []byte) (*commitPoint, error) {
	if len(b) < 12 {
		return nil, fmt.Errorf("%w: commit point of %d bytes", ErrCorrupt, len(b))
	}
	if binary.LittleEndian.Uint32(b) != commitMagic {
		return nil, fmt.Errorf("%w: commit point magic", ErrCorrupt)
	}
	n := binary.LittleEndian.Uint32(b[4:])
	if n > maxCommitLen || int(n) != len(b)-12 {
		return nil, fmt.Errorf("%w: commit point length %d in a file of %d bytes", ErrCorrupt, n, len(b))
	}
	if got, want := crc32.Checksum(b[:len(b)-4], castagnoli), binary.LittleEndian.Uint32(b[len(b)-4:]); got != want {
		return nil, fmt.Errorf("%w: commit point checksum %08x, stored %08x", ErrCorrupt, got, want)
	}
	var c commitPoint
	if err := json.Unmarshal(b[8:len(b)-4], &c); err != nil {
		return nil, fmt.Errorf("%w: commit point payload: %v", ErrCorrupt, err)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *commitPoint) validate() error {
	if c.Data.FormatVersion > FormatVersion {
		return fmt.Errorf("shardstore: commit format %d is newer than this build reads (%d)", c.Data.FormatVersion, FormatVersion)
	}
	if c.Data.LocalCheckpoint > c.Data.MaxSeqNo {
		return fmt.Errorf("%w: commit checkpoint %v above max seqno %v", ErrCorrupt, c.Data.LocalCheckpoint, c.Data.MaxSeqNo)
	}
	seen := make(map[string]bool, len(c.Files))
	for _, f := range c.Files {
		if err := ValidateName(f.Name); err != nil {
			return fmt.Errorf("%w: commit lists file: %v", ErrCorrupt, err)
		}
		if seen[f.Name] || f.Length < 0 {
			return fmt.Errorf("%w: commit lists file %q twice or with a negative length", ErrCorrupt, f.Name)
		}
		seen[f.Name] = true
	}
	return nil
}

func (c *commitPoint) metadata() Metadata {
	files := append([]FileMeta(nil), c.Files...)
	return Metadata{Generation: c.Generation, Files: files, Commit: c.Data}
}

// writeCommit publishes c durably as commit_<gen>.
func writeCommit(dir string, c *commitPoint) error {
	sort.Slice(c.Files, func(i, j int) bool { return c.Files[i].Name < c.Files[j].Name })
	b, err := encodeCommit(c)
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(filepath.Join(dir, commitName(c.Generation)), b, 0o644)
}

// commitGens lists the generations of commit files in dir, newest first.
func commitGens(dir string) ([]uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var gens []uint64
	for _, e := range entries {
		if g, ok := parseCommitName(e.Name()); ok {
			gens = append(gens, g)
		}
	}
	sort.Slice(gens, func(i, j int) bool { return gens[i] > gens[j] })
	return gens, nil
}

// ErrNoCommit means a shard directory holds no commit point at all.
var ErrNoCommit = engine.ErrNoCommit

// loadNewestCommit returns the newest commit whose checksum verifies, and
// the highest generation number present (valid or not), so a new commit
// never reuses the name of a damaged one. Only a damaged commit (ErrCorrupt)
// is passed over for an older one; a commit that cannot be read (an I/O
// error) or is of a newer format stops the load with that error, which is
// not ErrCorrupt: falling back would silently roll the shard back.
func loadNewestCommit(dir string) (c *commitPoint, highest uint64, err error) {
	gens, err := commitGens(dir)
	if err != nil {
		return nil, 0, fmt.Errorf("shardstore: list commits in %s: %w", dir, err)
	}
	if len(gens) == 0 {
		return nil, 0, ErrNoCommit
	}
	var errs []error
	for _, g := range gens {
		b, err := os.ReadFile(filepath.Join(dir, commitName(g)))
		if err != nil {
			return nil, gens[0], fmt.Errorf("shardstore: read %s: %w", commitName(g), err)
		}
		c, err = decodeCommit(b)
		if err == nil && c.Generation != g {
			err = fmt.Errorf("%w: %s holds generation %d", ErrCorrupt, commitName(g), c.Generation)
		}
		if err == nil {
			return c, gens[0], nil
		}
		if !errors.Is(err, ErrCorrupt) {
			return nil, gens[0], fmt.Errorf("%s: %w", commitName(g), err)
		}
		errs = append(errs, fmt.Errorf("%s: %w", commitName(g), err))
	}
	return nil, gens[0], fmt.Errorf("%w: no commit point verifies: %w", ErrCorrupt, errors.Join(errs...))
}
