package planner

import "testing"

func TestCompareVersions(t *testing.T) {
	cases := []struct {
		a, b string
		want int
		ok   bool
	}{
		{"0.1.0", "0.1.0", 0, true},
		{"2.1.0", "2.3.0", -1, true},
		{"v2.10.0", "2.9.9", 1, true},
		{"1.0.0-rc.1", "1.0.0", -1, true},
		{"1.0.0-alpha", "1.0.0-alpha.1", -1, true},
		{"1.0.0-alpha.1", "1.0.0-alpha.beta", -1, true},
		{"1.0.0-beta.11", "1.0.0-beta.2", 1, true},
		{"1.0.0+build.5", "1.0.0", 0, true},
		{"99999999999999999999.0.0", "1.0.0", 1, true},
		{"1.0", "1.0.0", 0, false},
		{"01.0.0", "1.0.0", 0, false},
		{"1.0.0-", "1.0.0", 0, false},
		{"", "1.0.0", 0, false},
	}
	for _, c := range cases {
		got, ok := CompareVersions(c.a, c.b)
		if got != c.want || ok != c.ok {
			t.Errorf("CompareVersions(%q, %q) = %d, %v; want %d, %v", c.a, c.b, got, ok, c.want, c.ok)
		}
	}
}
