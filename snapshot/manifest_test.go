package snapshot

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/recoverd/recoverd/shardstore"
)

func sampleManifest() *Manifest {
	start := time.Date(2026, 11, 23, 18, 30, 0, 123e6, time.UTC)
	id := shardstore.ShardID{Index: "logs", Shard: 3}
	return &Manifest{
		Version: ManifestVersion, ID: "s-20261123T183000.123Z-0a1b2c", Shard: id,
		StartTime: start, EndTime: start.Add(3 * time.Second), Generation: 7,
		Commit: shardstore.CommitData{
			HistoryUUID: "5b0e3c1e-6c39-4a7e-9d7c-2f1f3c0b9a11", MaxSeqNo: 99, LocalCheckpoint: 99, GlobalCheckpoint: 90,
			MinRetainedSeqNo: 50, PrimaryTerm: 2, WriterVersion: "0.1.0", FormatVersion: 1, MaxTermAboveGlobalCheckpoint: 2,
		},
		Files: []FileEntry{
			{FileMeta: shardstore.FileMeta{Name: "seg_00000002_a", Length: 1000, CRC32C: 0xdeadbeef, WriterUUID: "00112233445566778899aabbccddeeff"}, Blob: "logs/3/blobs/seg_00000002_a-0123456789ab"},
			{FileMeta: shardstore.FileMeta{Name: "seg_00000003_b", Length: 4, CRC32C: 1}, Blob: "logs/3/blobs/seg_00000003_b-ba9876543210"},
		},
	}
}

func TestManifestRoundTrip(t *testing.T) {
	m := sampleManifest()
	data, err := EncodeManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := EncodeManifest(got)
	if !bytes.Equal(data, again) {
		t.Fatalf("round trip differs:\n%s\n%s", data, again)
	}
	for _, field := range []string{`"manifest_version": 1`, `"snapshot_id"`, `"history_uuid"`, `"max_seqno": 99`, `"local_checkpoint": 99`,
		`"global_checkpoint": 90`, `"max_term_above_global_checkpoint": 2`, `"writer_version": "0.1.0"`, `"format_version": 1`, `"start_time"`, `"end_time"`,
		`"name": "seg_00000002_a"`, `"length": 1000`, `"crc32c": 3735928559`, `"writer_uuid"`, `"blob": "logs/3/blobs/seg_00000002_a-0123456789ab"`} {
		if !strings.Contains(string(data), field) {
			t.Errorf("manifest lacks %s:\n%s", field, data)
		}
	}
}

func TestManifestRejects(t *testing.T) {
	good, _ := EncodeManifest(sampleManifest())
	edit := func(old, new string) []byte {
		if !bytes.Contains(good, []byte(old)) {
			t.Fatalf("sample lacks %q", old)
		}
		return bytes.Replace(good, []byte(old), []byte(new), 1)
	}
	cases := map[string][]byte{
		"empty":            nil,
		"truncated":        good[:len(good)/2],
		"not json":         []byte("hello"),
		"trailing data":    append(append([]byte{}, good...), []byte(`{}`)...),
		"newer version":    edit(`"manifest_version": 1`, `"manifest_version": 2`),
		"no version":       edit(`"manifest_version": 1,`, ``),
		"unknown field":    edit(`"generation": 7`, `"generation": 7, "extra": true`),
		"path in name":     edit(`"name": "seg_00000002_a"`, `"name": "../../etc/passwd"`),
		"slash in name":    edit(`"name": "seg_00000002_a"`, `"name": "a/b"`),
		"dot name":         edit(`"name": "seg_00000002_a"`, `"name": ".."`),
		"blob elsewhere":   edit(`"blob": "logs/3/blobs/seg_00000002_a-0123456789ab"`, `"blob": "logs/4/blobs/x"`),
		"blob escapes":     edit(`"blob": "logs/3/blobs/seg_00000002_a-0123456789ab"`, `"blob": "logs/3/blobs/../../../x"`),
		"blob nested":      edit(`"blob": "logs/3/blobs/seg_00000002_a-0123456789ab"`, `"blob": "logs/3/blobs/a/b"`),
		"short file":       edit(`"length": 4`, `"length": 3`),
		"negative length":  edit(`"length": 1000`, `"length": -1`),
		"duplicate name":   edit(`"name": "seg_00000003_b"`, `"name": "seg_00000002_a"`),
		"bad id":           edit(`"snapshot_id": "s-20261123T183000.123Z-0a1b2c"`, `"snapshot_id": "s-../x"`),
		"checkpoint above": edit(`"local_checkpoint": 99`, `"local_checkpoint": 100`),
		"no history":       edit(`"history_uuid": "5b0e3c1e-6c39-4a7e-9d7c-2f1f3c0b9a11"`, `"history_uuid": ""`),
		"ends before":      edit(`"end_time": "2026-11-23T18:30:03.123Z"`, `"end_time": "2026-11-23T18:29:03.123Z"`),
		"bad writer uuid":  edit(`"writer_uuid": "00112233445566778899aabbccddeeff"`, `"writer_uuid": "zz/../"`),
		"bad shard":        edit(`"index": "logs"`, `"index": "../logs"`),
		"huge":             append([]byte(`{"manifest_version":1,"x":"`), bytes.Repeat([]byte("a"), MaxManifestBytes)...),
	}
	for name, data := range cases {
		if _, err := DecodeManifest(data); !errors.Is(err, ErrCorruptManifest) {
			t.Errorf("%s: %v, want ErrCorruptManifest", name, err)
		}
	}
}

func TestSnapshotIDs(t *testing.T) {
	a := NewSnapshotID(time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC))
	b := NewSnapshotID(time.Date(2026, 1, 2, 3, 4, 5, 7e6, time.UTC))
	if err := ValidateSnapshotID(a); err != nil {
		t.Fatal(err)
	}
	if !(a < b) || !strings.HasPrefix(a, "s-20260102T030405.006Z-") {
		t.Fatalf("ids %s, %s", a, b)
	}
	for _, bad := range []string{"", "s-", "x-20260102T030405.006Z-abcdef", "s-20260102T030405.006Z-ABCDEF", "s-20261302T030405.006Z-abcdef", "s-20260102T030405.006Z-abcde/", "s-20260102T030405Z-abcdef0000"} {
		if ValidateSnapshotID(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzManifest(f *testing.F) {
	good, _ := EncodeManifest(sampleManifest())
	f.Add(good)
	f.Add(good[:len(good)/3])
	f.Add([]byte(`{"manifest_version":1}`))
	f.Add([]byte(`{"manifest_version":1,"files":[{"name":"..","blob":"x"}]}`))
	f.Add(bytes.Replace(good, []byte("seg_00000002_a\""), []byte("../seg\""), 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeManifest(data)
		if err != nil {
			if !errors.Is(err, ErrCorruptManifest) {
				t.Fatalf("error %v is not ErrCorruptManifest", err)
			}
			return
		}
		// Whatever decodes is safe to use: names are plain, blobs under the
		// shard's prefix, and it encodes and decodes to itself.
		for _, fe := range m.Files {
			if shardstore.ValidateName(fe.Name) != nil || !strings.HasPrefix(fe.Blob, BlobPrefix(m.Shard)) || ValidateKey(fe.Blob) != nil {
				t.Fatalf("unsafe entry decoded: %+v", fe)
			}
		}
		enc, err := EncodeManifest(m)
		if err != nil {
			t.Fatalf("decoded manifest does not encode: %v", err)
		}
		m2, err := DecodeManifest(enc)
		if err != nil {
			t.Fatalf("encoded manifest does not decode: %v", err)
		}
		enc2, _ := EncodeManifest(m2)
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("not stable:\n%s\n%s", enc, enc2)
		}
	})
}
