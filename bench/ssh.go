package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/recoverd/recoverd/internal/launch"
)

// sshCipher is the cipher both ends of case 8's rsync over ssh use: the
// AES-GCM that OpenSSH picks on hardware with AES instructions, as TLS 1.3
// does for recoverd.
const sshCipher = "aes128-gcm@openssh.com"

// sshKeys are case 8's throwaway keys: a host key for the bench's own sshd
// and a client key it accepts, both in the run directory.
type sshKeys struct {
	dir, hostKey, clientKey, authorized string
}

// newSSHKeys makes the keys with ssh-keygen into <work>/run/ssh.
func (b *bench) newSSHKeys(ctx context.Context) (*sshKeys, error) {
	k := &sshKeys{dir: filepath.Join(b.work, "run", "ssh")}
	os.RemoveAll(k.dir)
	if err := os.MkdirAll(k.dir, 0o700); err != nil {
		return nil, err
	}
	k.hostKey, k.clientKey, k.authorized = filepath.Join(k.dir, "host_ed25519"), filepath.Join(k.dir, "client_ed25519"), filepath.Join(k.dir, "authorized_keys")
	for _, key := range []string{k.hostKey, k.clientKey} {
		if out, err := exec.CommandContext(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "recoverd-bench", "-f", key).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("ssh-keygen: %w: %s", err, out)
		}
	}
	pub, err := os.ReadFile(k.clientKey + ".pub")
	if err != nil {
		return nil, err
	}
	return k, os.WriteFile(k.authorized, pub, 0o600)
}

// startSSHD starts the bench's own sshd (not the system's) on a free
// 127.0.0.1 port, in the foreground (-D) so it is our child and is stopped
// by PID like the others. It accepts only the client key.
func (b *bench) startSSHD(ctx context.Context, k *sshKeys) (*proc, string, error) {
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		if sshd, err = exec.LookPath("/usr/sbin/sshd"); err != nil {
			return nil, "", fmt.Errorf("sshd not found (make bench installs openssh-server): %w", err)
		}
	}
	if os.Geteuid() == 0 {
		// sshd run by root insists on its privilege separation directory,
		// which Debian's package makes at boot only.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return nil, "", err
		}
	}
	addr, err := launch.FreeAddr()
	if err != nil {
		return nil, "", err
	}
	_, port, _ := net.SplitHostPort(addr)
	user := os.Getenv("USER")
	if user == "" {
		user = "root"
	}
	conf := filepath.Join(k.dir, "sshd_config")
	text := strings.Join([]string{
		"ListenAddress 127.0.0.1", "Port " + port, "HostKey " + k.hostKey, "PidFile " + filepath.Join(k.dir, "sshd.pid"),
		"AuthorizedKeysFile " + k.authorized, "AllowUsers " + user, "PermitRootLogin prohibit-password",
		"PubkeyAuthentication yes", "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
		"StrictModes no", "Ciphers " + sshCipher, "Compression no", "UseDNS no", "PrintMotd no",
		"X11Forwarding no", "AllowTcpForwarding no", "Subsystem sftp internal-sftp", "LogLevel ERROR", "",
	}, "\n")
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return nil, "", err
	}
	p, err := startProc("sshd", filepath.Join(b.logDir, "sshd.log"), cleanEnv(), sshd, "-D", "-e", "-f", conf)
	if err != nil {
		return nil, "", err
	}
	if err := waitListening(ctx, addr, p); err != nil {
		p.stop(10 * time.Second)
		return nil, "", err
	}
	return p, port, nil
}

// sshCommand is rsync's -e: the client with the case's cipher and key, no
// user configuration and no known_hosts.
func (k *sshKeys) sshCommand(port string) string {
	return strings.Join([]string{"ssh", "-F", "/dev/null", "-c", sshCipher, "-o", "Compression=no", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
		"-i", k.clientKey, "-p", port}, " ")
}

// runRsyncSSH pulls the shard directory with `rsync -a --whole-file` over
// ssh from the bench's sshd (a fresh one per run, so its rusage is this
// run's) + `sync`. The source side is sshd and what it forks: the session
// and the remote rsync; their CPU and reads are counted once reaped.
func (b *bench) runRsyncSSH(ctx context.Context, k *sshKeys, d *dataset) (sample, error) {
	dst := filepath.Join(b.work, "run", "dst")
	if err := os.RemoveAll(dst); err != nil {
		return sample{}, err
	}
	daemon, port, err := b.startSSHD(ctx, k)
	if err != nil {
		return sample{}, err
	}
	defer daemon.stop(10 * time.Second)
	return b.rsyncFrom(ctx, daemon, d, dst, "rsync-ssh.log",
		`rsync -a --whole-file -e "$1" "127.0.0.1:$2/" "$3/"`+"\nsync", k.sshCommand(port), d.shardDir(), dst)
}
