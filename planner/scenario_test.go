package planner

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

// A scenario file (testdata/*.txt) describes one recovery in plain text:
//
//	# comments start with '#'
//	name: snapshot after a primary failover
//	about: free text for the reader (may repeat)
//
//	[source]
//	version: 0.1.0            node version (default 0.1.0)
//	max_format: 1             newest format it writes (default 1)
//	commit: history=h1 max=500 checkpoint=500 global=500 version=0.1.0 format=1
//	max_seqno: 520            highest op held (default: the commit's max)
//	retained: 450..520        ops the op log still serves, or "none"
//	op_bytes: 1KiB            average op size (default DefaultOpBytes)
//	lease: peer-node-2 from=450
//	file: seg_1 10MiB crc=aa01 writer=w1
//
//	[target]                  same keys, plus:
//	state: present            present (default), empty or unreadable
//	error: checksum mismatch  why it is unreadable
//
//	[snapshot]
//	state: available          none, disabled, unavailable or available
//	id: s-42
//	error: ...                the repository's error when unavailable
//	commit: ... / file: ...
//	bad: seg_1 idx/0/blobs/seg_1-ab checksum, found by ...   a file whose blob is marked bad (may repeat)
//
//	[settings]                defaults: DefaultSettings()
//	use_snapshots: true
//	allow_data_loss: false    overwrite a target ahead of the source
//	source_byte_cost: 1
//	repo_byte_cost: 0.25
//	op_cost: 0
//
//	[expect]                  every key but kind is optional
//	kind: snapshot
//	snapshot_id: s-42
//	reused: seg_3 seg_4       file names, or "none"
//	from_snapshot: ...
//	from_peer: ...
//	ops: 501..520             or "none"
//	lease: 501
//	fallback: peer            or "none"
//	bytes_from_source: 20KiB
//	bytes_from_repo: 1GiB
//	reason: substring that some reason line must contain (may repeat)
//
// Commit fields default to version=0.1.0 format=1; max and checkpoint
// default to -1 (no ops). Sizes take B, KiB, MiB, GiB suffixes.
type scenario struct {
	name   string
	input  Input
	expect map[string][]string
}

func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mul    int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}}
	mul := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mul = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mul
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	return int64(n * float64(mul)), nil
}

func parseRange(s string) (seqno.Range, error) {
	if s == "none" {
		return seqno.EmptyRange, nil
	}
	a, b, ok := strings.Cut(s, "..")
	if !ok {
		return seqno.Range{}, fmt.Errorf("range %q: want from..to or none", s)
	}
	from, err1 := strconv.ParseInt(a, 10, 64)
	to, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil {
		return seqno.Range{}, fmt.Errorf("range %q: bad number", s)
	}
	return seqno.Range{From: seqno.SeqNo(from), To: seqno.SeqNo(to)}, nil
}

// fields parses "a=1 b=2" after an optional leading positional word list.
func fields(s string) (pos []string, kv map[string]string) {
	kv = map[string]string{}
	for _, w := range strings.Fields(s) {
		if k, v, ok := strings.Cut(w, "="); ok {
			kv[k] = v
		} else {
			pos = append(pos, w)
		}
	}
	return pos, kv
}

func parseCommit(s string) (shardstore.CommitData, error) {
	c := shardstore.CommitData{MaxSeqNo: -1, LocalCheckpoint: -1, GlobalCheckpoint: -1, MinRetainedSeqNo: 0, WriterVersion: "0.1.0", FormatVersion: 1}
	pos, kv := fields(s)
	if len(pos) > 0 {
		return c, fmt.Errorf("commit: unexpected %q", pos)
	}
	for k, v := range kv {
		var err error
		var n int64
		switch k {
		case "history":
			c.HistoryUUID = v
		case "version":
			c.WriterVersion = v
		case "max", "checkpoint", "global", "format", "term", "above_term":
			n, err = strconv.ParseInt(v, 10, 64)
			switch k {
			case "max":
				c.MaxSeqNo = seqno.SeqNo(n)
			case "checkpoint":
				c.LocalCheckpoint = seqno.SeqNo(n)
			case "global":
				c.GlobalCheckpoint = seqno.SeqNo(n)
			case "format":
				c.FormatVersion = int(n)
			case "term":
				c.PrimaryTerm = uint64(n)
			case "above_term":
				c.MaxTermAboveGlobalCheckpoint = uint64(n)
			}
		default:
			err = fmt.Errorf("unknown field")
		}
		if err != nil {
			return c, fmt.Errorf("commit field %s=%s: %v", k, v, err)
		}
	}
	return c, nil
}

func parseFile(s string) (shardstore.FileMeta, error) {
	pos, kv := fields(s)
	if len(pos) != 2 {
		return shardstore.FileMeta{}, fmt.Errorf("file %q: want name size [crc=hex] [writer=uuid]", s)
	}
	n, err := parseSize(pos[1])
	if err != nil {
		return shardstore.FileMeta{}, err
	}
	f := shardstore.FileMeta{Name: pos[0], Length: n, WriterUUID: kv["writer"]}
	if c, ok := kv["crc"]; ok {
		x, err := strconv.ParseUint(c, 16, 32)
		if err != nil {
			return f, fmt.Errorf("file %s crc %q: %v", f.Name, c, err)
		}
		f.CRC32C = uint32(x)
	}
	return f, nil
}

func parseScenario(path string) (*scenario, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	sc := &scenario{expect: map[string][]string{}}
	in := &sc.input
	in.Source.Version, in.Source.MaxFormat = "0.1.0", 1
	in.Target.Version, in.Target.MaxFormat = "0.1.0", 1
	in.Settings = DefaultSettings()
	section := ""
	srcMaxSet := false
	targetState := "present"
	s := bufio.NewScanner(fh)
	for lineNo := 1; s.Scan(); lineNo++ {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want key: value", path, lineNo)
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		err := func() error {
			switch section + "." + key {
			case ".name":
				sc.name = val
			case ".about":
			case "source.version":
				in.Source.Version = val
			case "target.version":
				in.Target.Version = val
			case "source.max_format", "target.max_format":
				n, err := strconv.Atoi(val)
				if section == "source" {
					in.Source.MaxFormat = n
				} else {
					in.Target.MaxFormat = n
				}
				return err
			case "source.commit", "target.commit", "snapshot.commit":
				c, err := parseCommit(val)
				switch section {
				case "source":
					in.Source.Meta.Commit = c
				case "target":
					in.Target.Meta.Commit = c
				default:
					in.Snapshot.Commit = c
				}
				return err
			case "source.file", "target.file", "snapshot.file":
				f, err := parseFile(val)
				switch section {
				case "source":
					in.Source.Meta.Files = append(in.Source.Meta.Files, f)
				case "target":
					in.Target.Meta.Files = append(in.Target.Meta.Files, f)
				default:
					in.Snapshot.Files = append(in.Snapshot.Files, f)
				}
				return err
			case "source.max_seqno":
				n, err := strconv.ParseInt(val, 10, 64)
				in.Source.MaxSeqNo, srcMaxSet = seqno.SeqNo(n), true
				return err
			case "source.retained":
				r, err := parseRange(val)
				in.Source.Retained = r
				return err
			case "source.op_bytes":
				n, err := parseSize(val)
				in.Source.OpBytes = n
				return err
			case "source.lease":
				pos, kv := fields(val)
				n, err := strconv.ParseInt(kv["from"], 10, 64)
				if len(pos) != 1 || err != nil {
					return fmt.Errorf("lease: want id from=seqno")
				}
				in.Source.Leases = append(in.Source.Leases, seqno.RetentionLease{ID: pos[0], RetainingSeqNo: seqno.SeqNo(n), Source: "scenario", Timestamp: time.Unix(0, 0).UTC()})
			case "target.state":
				targetState = val
			case "target.error":
				in.Target.Unreadable = val
			case "snapshot.state":
				in.Snapshot.State = SnapshotState(val)
			case "snapshot.id":
				in.Snapshot.ID = val
			case "snapshot.error":
				in.Snapshot.Err = val
			case "snapshot.bad":
				f := strings.Fields(val)
				if len(f) < 2 {
					return fmt.Errorf("bad: want file blob [why]")
				}
				in.Snapshot.BadBlobs = append(in.Snapshot.BadBlobs, BadBlob{File: f[0], Blob: f[1], Why: strings.Join(f[2:], " ")})
			case "settings.use_snapshots":
				b, err := strconv.ParseBool(val)
				in.Settings.UseSnapshots = b
				return err
			case "settings.allow_data_loss":
				b, err := strconv.ParseBool(val)
				in.Settings.AllowDataLoss = b
				return err
			case "settings.source_byte_cost", "settings.repo_byte_cost", "settings.op_cost":
				x, err := strconv.ParseFloat(val, 64)
				switch key {
				case "source_byte_cost":
					in.Settings.SourceByteCost = x
				case "repo_byte_cost":
					in.Settings.RepoByteCost = x
				default:
					in.Settings.OpCost = x
				}
				return err
			default:
				if section == "expect" {
					sc.expect[key] = append(sc.expect[key], val)
					return nil
				}
				return fmt.Errorf("unknown key %q in section [%s]", key, section)
			}
			return nil
		}()
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, lineNo, err)
		}
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	if !srcMaxSet {
		in.Source.MaxSeqNo = in.Source.Meta.Commit.MaxSeqNo
	}
	switch targetState {
	case "present":
	case "empty":
		in.Target.Empty = true
	case "unreadable":
		if in.Target.Unreadable == "" {
			in.Target.Unreadable = "unreadable"
		}
	default:
		return nil, fmt.Errorf("%s: target state %q: want present, empty or unreadable", path, targetState)
	}
	if sc.name == "" || len(sc.expect["kind"]) != 1 {
		return nil, fmt.Errorf("%s: a scenario needs a name and one expected kind", path)
	}
	return sc, nil
}

func names(files []shardstore.FileMeta) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.Name
	}
	return out
}

func wantNames(s string) []string {
	if s == "none" {
		return []string{}
	}
	w := strings.Fields(s)
	slices.Sort(w)
	return w
}

func (sc *scenario) check(t *testing.T, p Plan) {
	t.Helper()
	one := func(key string) (string, bool) {
		v := sc.expect[key]
		if len(v) == 0 {
			return "", false
		}
		return v[len(v)-1], true
	}
	if k, _ := one("kind"); string(p.Kind) != k {
		t.Errorf("kind = %s, want %s", p.Kind, k)
	}
	if id, ok := one("snapshot_id"); ok && p.SnapshotID != id {
		t.Errorf("snapshot_id = %q, want %q", p.SnapshotID, id)
	}
	for key, got := range map[string][]shardstore.FileMeta{"reused": p.Reused, "from_snapshot": p.FromSnapshot, "from_peer": p.FromPeer} {
		if w, ok := one(key); ok && !reflect.DeepEqual(names(got), wantNames(w)) {
			t.Errorf("%s = %v, want %v", key, names(got), wantNames(w))
		}
	}
	if w, ok := one("ops"); ok {
		r, err := parseRange(w)
		if err != nil {
			t.Fatal(err)
		}
		if r.Empty() != p.Ops.Empty() || (!r.Empty() && r != p.Ops) {
			t.Errorf("ops = %v, want %v", p.Ops, w)
		}
	}
	if w, ok := one("lease"); ok {
		if p.Lease == nil || strconv.FormatInt(int64(p.Lease.RetainingSeqNo), 10) != w {
			t.Errorf("lease = %+v, want retaining %s", p.Lease, w)
		}
	}
	if w, ok := one("fallback"); ok {
		got := "none"
		if p.Fallback != nil {
			got = string(p.Fallback.Kind)
		}
		if got != w {
			t.Errorf("fallback = %s, want %s", got, w)
		}
	}
	for key, got := range map[string]int64{"bytes_from_source": p.BytesFromSource, "bytes_from_repo": p.BytesFromRepo} {
		if w, ok := one(key); ok {
			n, err := parseSize(w)
			if err != nil {
				t.Fatal(err)
			}
			if got != n {
				t.Errorf("%s = %d (%s), want %s", key, got, human(got), w)
			}
		}
	}
	for _, want := range sc.expect["reason"] {
		if !slices.ContainsFunc(p.Reasons, func(r string) bool { return strings.Contains(r, want) }) {
			t.Errorf("no reason contains %q", want)
		}
	}
	for key := range sc.expect {
		switch key {
		case "kind", "snapshot_id", "reused", "from_snapshot", "from_peer", "ops", "lease", "fallback", "bytes_from_source", "bytes_from_repo", "reason":
		default:
			t.Errorf("unknown expect key %q", key)
		}
	}
}

// TestScenarios runs every scenario in testdata/. Run with -v to read each
// plan as `recoverctl plan --explain` prints it.
func TestScenarios(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 13 {
		t.Fatalf("found %d scenarios, expected at least 13", len(paths))
	}
	for _, path := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			sc, err := parseScenario(path)
			if err != nil {
				t.Fatal(err)
			}
			p := Compute(sc.input)
			t.Logf("%s\n%s", sc.name, p.Explain())
			if err := p.Validate(sc.input); err != nil {
				t.Errorf("Validate: %v", err)
			}
			sc.check(t, p)
		})
	}
}
