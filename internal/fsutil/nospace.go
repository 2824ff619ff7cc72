package fsutil

import (
	"errors"
	"syscall"
)

// IsNoSpace reports whether err is a full disk or an exhausted quota
// (ENOSPC, EDQUOT): asking again does not help, the bytes need the space.
func IsNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
