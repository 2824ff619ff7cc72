package shardstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// The op log is repaired only at its tail: an incomplete record at the end
// of the newest generation is cut; a bad record that valid ones follow, or
// a read error, stops the open and leaves every byte where it was.

// closedLog indexes n docs into a new shard (no flush: every op is only in
// the op log), closes it and returns the data dir and the newest op log
// generation file.
func closedLog(t *testing.T, n int) (base, logFile string) {
	t.Helper()
	base = t.TempDir()
	s, err := Open(base, ShardID{Index: "idx", Shard: 0}, Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	mustIndex(t, s, n, 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	logs, _ := filepath.Glob(filepath.Join(s.Path(), oplogDir, "*", "*"+oplogSuffix))
	if len(logs) == 0 {
		t.Fatal("no op log generation")
	}
	return base, logs[len(logs)-1]
}

// recordOffsets walks the record headers of an op log file.
func recordOffsets(t *testing.T, path string) []int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int64
	for off := 0; off+recHeaderLen <= len(b); {
		offs = append(offs, int64(off))
		off += recHeaderLen + int(binary.LittleEndian.Uint32(b[off:]))
	}
	return offs
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestOpLogMidFileChecksumStopsOpenAndCutsNothing(t *testing.T) {
	base, logFile := closedLog(t, 100)
	offs := recordOffsets(t, logFile)
	bad := offs[50]
	b, _ := os.ReadFile(logFile)
	b[bad+recHeaderLen+2] ^= 0x40 // one bit in record 50's payload; 49 valid records follow
	if err := os.WriteFile(logFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	before := fileSum(t, logFile)

	_, err := Open(base, ShardID{Index: "idx", Shard: 0}, Options{})
	if err == nil {
		t.Fatal("a shard whose op log has a bad record in the middle opened (acknowledged ops after it would be dropped)")
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("a checksum failure is corruption, got %v", err)
	}
	for _, want := range []string{logFile, fmt.Sprintf("offset %d", bad)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if fileSum(t, logFile) != before {
		t.Fatal("the op log was changed by a failed open")
	}
}

func TestOpLogReadErrorStopsOpenAndCutsNothing(t *testing.T) {
	base, logFile := closedLog(t, 30000) // more than one buffered read
	before := fileSum(t, logFile)
	var reads atomic.Int32
	opts := Options{Fault: func(point, path string) error {
		if point == "oplog.read" && path == logFile && reads.Add(1) == 2 {
			return &os.PathError{Op: "read", Path: path, Err: syscall.EIO}
		}
		return nil
	}}
	_, err := Open(base, ShardID{Index: "idx", Shard: 0}, opts)
	if err == nil {
		t.Fatal("a shard whose op log could not be read opened")
	}
	if errors.Is(err, ErrCorrupt) || !errors.Is(err, syscall.EIO) {
		t.Errorf("a read error is not corruption and must say what failed, got %v", err)
	}
	if !strings.Contains(err.Error(), logFile) || !strings.Contains(err.Error(), "offset ") {
		t.Errorf("error %q does not name the file and the offset", err)
	}
	if fileSum(t, logFile) != before {
		t.Fatal("a read error cut the op log")
	}
	// The error was transient: the next open replays every op.
	s, err := Open(base, ShardID{Index: "idx", Shard: 0}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if cp := s.Stats().Seq.LocalCheckpoint; cp != 29999 {
		t.Fatalf("local checkpoint %v after the read error passed, want 29999", cp)
	}
}

func TestOpLogLastRecordChecksumIsNotCut(t *testing.T) {
	// A complete last record that fails its checksum, with no zeroed
	// sector in it, is not what a crash leaves: it may be an acknowledged
	// op gone bad, so it is not cut.
	base, logFile := closedLog(t, 20)
	offs := recordOffsets(t, logFile)
	b, _ := os.ReadFile(logFile)
	b[offs[len(offs)-1]+recHeaderLen+1] ^= 0x01
	os.WriteFile(logFile, b, 0o644)
	before := fileSum(t, logFile)
	if _, err := Open(base, ShardID{Index: "idx", Shard: 0}, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open = %v, want a corruption error", err)
	}
	if fileSum(t, logFile) != before {
		t.Fatal("the op log was changed")
	}
}

func TestOpLogIncompleteTailIsCut(t *testing.T) {
	for _, tc := range []struct {
		name string
		tear func(b []byte, offs []int64) []byte
	}{
		{"half a header", func(b []byte, _ []int64) []byte { return append(b, 0x21, 0, 0) }},
		{"record cut short", func(b []byte, offs []int64) []byte {
			extra := appendRecord(nil, &Op{Key: "doc-999999", SeqNo: 20, PrimaryTerm: 1, Value: []byte("lost")})
			return append(b, extra[:len(extra)-3]...)
		}},
		{"zeros past the end", func(b []byte, _ []int64) []byte { return append(b, make([]byte, 700)...) }},
		{"torn record: a zeroed sector, then an incomplete one", func(b []byte, _ []int64) []byte {
			big := appendRecord(nil, &Op{Key: "doc-big", SeqNo: 20, PrimaryTerm: 1, Value: bytes.Repeat([]byte("x"), 3000)})
			start := len(b)
			b = append(b, big...)
			// The sector holding bytes 1100..1612 of the record never reached the disk.
			sector := (int64(start)+1100)/512*512 + 512
			clear(b[sector : sector+512])
			more := appendRecord(nil, &Op{Key: "doc-more", SeqNo: 21, PrimaryTerm: 1, Value: []byte("y")})
			return append(b, more[:5]...)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, logFile := closedLog(t, 20)
			b, _ := os.ReadFile(logFile)
			good := int64(len(b))
			if err := os.WriteFile(logFile, tc.tear(b, recordOffsets(t, logFile)), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := Open(base, ShardID{Index: "idx", Shard: 0}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if cp := s.Stats().Seq.LocalCheckpoint; cp != 19 {
				t.Fatalf("checkpoint %v, want 19", cp)
			}
			if fi, _ := os.Stat(logFile); fi.Size() != good {
				t.Fatalf("op log is %d bytes after the repair, want %d (cut at the first incomplete record)", fi.Size(), good)
			}
		})
	}
}

func TestOpLogBadRecordBeforeTornTailIsNotCut(t *testing.T) {
	// A checksum failure without a zeroed sector, even when only an
	// incomplete record follows it, is not a torn write.
	base, logFile := closedLog(t, 20)
	b, _ := os.ReadFile(logFile)
	extra := appendRecord(nil, &Op{Key: "doc-x", SeqNo: 20, PrimaryTerm: 1, Value: []byte("value")})
	extra[recHeaderLen+1] ^= 0x10
	b = append(append(b, extra...), 0x30, 0)
	os.WriteFile(logFile, b, 0o644)
	if _, err := Open(base, ShardID{Index: "idx", Shard: 0}, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open = %v, want a corruption error", err)
	}
	if fi, _ := os.Stat(logFile); fi.Size() != int64(len(b)) {
		t.Fatal("the op log was cut")
	}
}
