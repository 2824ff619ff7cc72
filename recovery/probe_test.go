package recovery

import (
	"errors"
	"testing"
)

func TestValidateSourceAddress(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:7401", "[::1]:7401", "localhost:1", "node-1.example.com:65535", "n1.:7401"} {
		if err := ValidateSourceAddress(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "n1", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "n1:http", ":7401", "http://n1:7401",
		"n1:7401/x", "bad_host:7401", "-n1:7401", "a..b:7401", "::1:7401"} {
		if err := ValidateSourceAddress(bad); !errors.Is(err, ErrSourceAddress) {
			t.Errorf("%q: %v, want ErrSourceAddress", bad, err)
		}
	}
}
