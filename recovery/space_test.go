package recovery

import "testing"

func TestParseDiskMargin(t *testing.T) {
	for _, tc := range []struct {
		in    string
		want  DiskMargin
		bytes int64 // of a 1000-byte disk
	}{
		{"5%", DiskMargin{Percent: 5}, 50},
		{" 12.5 % ", DiskMargin{Percent: 12.5}, 125},
		{"0", DiskMargin{}, 0},
		{"2KiB", DiskMargin{Bytes: 2048}, 2048},
		{"1MB", DiskMargin{Bytes: 1_000_000}, 1_000_000},
	} {
		got, err := ParseDiskMargin(tc.in)
		if err != nil || got != tc.want || got.of(1000) != tc.bytes {
			t.Errorf("ParseDiskMargin(%q) = %+v (%d of 1000 bytes), %v; want %+v (%d)", tc.in, got, got.of(1000), err, tc.want, tc.bytes)
		}
	}
	for _, bad := range []string{"", "100%", "-1%", "x%", "lots"} {
		if _, err := ParseDiskMargin(bad); err == nil {
			t.Errorf("ParseDiskMargin(%q) accepted", bad)
		}
	}
}
