package recovery

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/dustin/go-humanize"

	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/internal/staging"
	"github.com/recoverd/recoverd/planner"
)

// ErrNoSpace is the cause of a recovery refused because what its plan
// stages, plus the disk margin, is more than the target's free space
// (rpcerr.ErrNoSpace: FailedPrecondition).
var ErrNoSpace = rpcerr.ErrNoSpace

// DiskMargin is the free space a recovery must leave on the target's disk
// once it has staged what its plan moves, as Elasticsearch's disk
// watermarks keep a node from filling up: a share of the disk's size
// (Percent, 0-100) or a size in bytes. The zero value leaves no margin.
type DiskMargin struct {
	Percent float64
	Bytes   int64
}

// ParseDiskMargin reads "5%" (of the disk's size) or a size such as
// "2GiB" or "500MB"; "0" means no margin.
func ParseDiskMargin(s string) (DiskMargin, error) {
	s = strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || v < 0 || v >= 100 {
			return DiskMargin{}, fmt.Errorf("disk margin %q: want a percentage from 0 to 100 (exclusive) or a size", s)
		}
		return DiskMargin{Percent: v}, nil
	}
	n, err := humanize.ParseBytes(s)
	if err != nil {
		return DiskMargin{}, fmt.Errorf("disk margin %q: want a percentage such as 5%% or a size such as 2GiB: %w", s, err)
	}
	return DiskMargin{Bytes: int64(n)}, nil
}

func (d DiskMargin) String() string {
	if d.Percent > 0 {
		return strconv.FormatFloat(d.Percent, 'f', -1, 64) + "%"
	}
	return humanize.IBytes(uint64(d.Bytes))
}

// of is the margin in bytes on a disk of total bytes.
func (d DiskMargin) of(total int64) int64 {
	if d.Percent > 0 {
		return int64(float64(total) * d.Percent / 100)
	}
	return d.Bytes
}

// checkSpace refuses, before any byte moves, a plan whose staged bytes
// (files not staged yet and ops; for a plan with a fallback, the larger of
// the two, since a fallback stages everything anew) plus the disk margin
// are more than the free space of Config.DataDir. Both numbers are in the
// error, which wraps ErrNoSpace.
func (a *attempt) checkSpace(p planner.Plan) error {
	dir := a.m.cfg.DataDir
	if dir == "" || p.Kind == planner.KindOpsOnly {
		return nil
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		return fmt.Errorf("free space of the data directory: %w", err)
	}
	free, total := int64(fs.Bavail)*int64(fs.Bsize), int64(fs.Blocks)*int64(fs.Bsize)
	need := stageBytes(p, a.area)
	if p.Fallback != nil {
		need = max(need, stageBytes(*p.Fallback, nil))
	}
	margin := a.m.cfg.DiskMargin.of(total)
	if need+margin <= free {
		return nil
	}
	return fmt.Errorf("%w: the plan stages %s (%d bytes) and the disk margin is %s (%d bytes), but %s has %s (%d bytes) free; nothing was moved: free space on the target or lower its --disk-margin",
		ErrNoSpace, humanize.IBytes(uint64(need)), need, a.m.cfg.DiskMargin, margin, dir, humanize.IBytes(uint64(free)), free)
}

// stageBytes is what p writes into staging: its files from the peer and
// the snapshot, less what st already holds of them (a re-plan keeps it),
// and its ops.
func stageBytes(p planner.Plan, area *staging.Area) int64 {
	n := p.OpsBytes
	for _, f := range append(append([]engine.FileMeta(nil), p.FromPeer...), p.FromSnapshot...) {
		n += f.Length
		if area == nil {
			continue
		}
		if fi, err := os.Stat(filepath.Join(area.Dir(), f.Name)); err == nil {
			n -= min(fi.Size(), f.Length)
		}
	}
	return n
}
