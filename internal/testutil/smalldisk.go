package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// SmallDisk mounts a tmpfs of size bytes on a new directory and returns
// it; t.Cleanup unmounts it. A full disk is then a real one: writes fail
// with ENOSPC from the kernel, and statfs reports its free space. It needs
// root (CAP_SYS_ADMIN), as the suite has on its machines; without it the
// test fails, saying so, rather than passing untested.
func SmallDisk(t testing.TB, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("mount a %d-byte tmpfs on %s (this test needs root to make a small disk; uid %d): %v\n%s", size, dir, os.Geteuid(), err, out)
	}
	// Registered after TempDir's cleanup, so it runs first: the directory
	// is unmounted before it is removed.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "--lazy", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		}
	})
	return dir
}
