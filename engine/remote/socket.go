package remote

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"time"
)

// Listen listens on the Unix socket at path with the file mode perm (0600:
// only the engine's user; 0660: its group too, for a recoverd running as
// another user of the group). A socket file left by an engine that died
// (nothing answers it) is replaced; one a live engine answers is refused,
// as is a path that is not a socket. Close of the listener removes the
// file.
func Listen(path string, perm fs.FileMode) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("engine socket %s: the path exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("engine socket %s: another engine answers on it", path)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("engine socket %s: remove the stale socket: %w", path, err)
		}
	}
	// net.Listen creates the socket with the umask's mode and the chmod
	// narrows it right after: keep the socket in a directory only the
	// engine and recoverd reach (the shared emptyDir of deploy/).
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("engine socket: %w", err)
	}
	if err := os.Chmod(path, perm); err != nil {
		lis.Close()
		return nil, fmt.Errorf("engine socket %s: %w", path, err)
	}
	lis.(*net.UnixListener).SetUnlinkOnClose(true)
	return lis, nil
}
