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
		var (
			op Op
			rr recordReader
		)
		for {
			if _, err := rr.read(r, &op); err != nil {
				return
			}
			if op.Kind > OpDelete {
				t.Fatalf("decoded kind %d", op.Kind)
			}
		}
	})
}

// FuzzDecodeEntry checks that the op log's decoder (decodeEntry, no copy)
// accepts exactly what the segment reader (readEntry) accepts, with the
// same op.
func FuzzDecodeEntry(f *testing.F) {
	for _, op := range []Op{{Key: "k", SeqNo: 1, PrimaryTerm: 1, Value: []byte("v")}, {Key: "d", SeqNo: 2, Kind: OpDelete}, {SeqNo: 3, Kind: OpNoOp}} {
		e := appendEntry(nil, &op)
		f.Add(e)
		f.Add(e[:len(e)-1])
		f.Add(append(e, 0))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got, want Op
		gerr := decodeEntry(b, &got)
		br := bufio.NewReader(bytes.NewReader(b))
		werr := readEntry(br, &want)
		if werr == nil && br.Buffered() > 0 {
			werr = errShortEntry // trailing bytes
		}
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("decodeEntry: %v, readEntry: %v", gerr, werr)
		}
		if gerr == nil && (got.Key != want.Key || got.SeqNo != want.SeqNo || got.PrimaryTerm != want.PrimaryTerm || got.Kind != want.Kind || !bytes.Equal(got.Value, want.Value) || (got.Value == nil) != (want.Value == nil)) {
			t.Fatalf("decodeEntry %+v, readEntry %+v", got, want)
		}
	})
}
