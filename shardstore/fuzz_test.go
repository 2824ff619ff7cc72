package shardstore

import (
	"bufio"
	"bytes"
	"testing"
)

func FuzzDecodeCommit(f *testing.F) {
	good, _ := encodeCommit(&commitPoint{Generation: 3, Files: []FileMeta{{Name: "seg_1", Length: 100, CRC32C: 7, WriterUUID: "w"}}, Data: CommitData{HistoryUUID: "h", MaxSeqNo: 5, LocalCheckpoint: 5}})
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte("RCMT"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCommit(b)
		if err != nil {
			return
		}
		// Whatever decodes must be safe to use as a file list.
		for _, fm := range c.Files {
			if ValidateName(fm.Name) != nil {
				t.Fatalf("decoded an invalid name %q", fm.Name)
			}
		}
		again, err := encodeCommit(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeCommit(again); err != nil {
			t.Fatalf("re-encoded commit does not decode: %v", err)
		}
	})
}

func FuzzReadRecord(f *testing.F) {
	var buf []byte
	for _, op := range []Op{{Key: "k", SeqNo: 1, PrimaryTerm: 1, Value: []byte("v")}, {Key: "d", SeqNo: 2, Kind: OpDelete}} {
		buf = appendRecord(buf, &op)
	}
	f.Add(buf)
	f.Add(buf[:len(buf)-3])
	f.Add([]byte{255, 255, 255, 255, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		var op Op
		for {
			if _, err := readRecord(r, &op); err != nil {
				return
			}
			if op.Kind > OpDelete {
				t.Fatalf("decoded kind %d", op.Kind)
			}
		}
	})
}
