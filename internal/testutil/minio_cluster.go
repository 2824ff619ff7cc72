package testutil

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// MinIOCluster is MinIO in distributed erasure-coded mode: Servers server
// processes on 127.0.0.1, each on its own port with its own drive
// directory, forming one erasure set (with 4 servers: 2 data and 2 parity
// shards per object, so reads need 2 servers and writes 3). Every server
// is a MinIO handle of its own (Kill, Restart, Pause, PID, LogTail); the
// cluster's Kill and Restart take several at once.
//
// Clients talk to one server, Servers[0] (Endpoint, Client): a production
// deployment puts a load balancer in front of all of them instead, so the
// loss of the server a client talks to is the load balancer's business;
// the loss of the others is what the erasure code is for.
type MinIOCluster struct {
	Servers []*MinIO
	// AccessKey and SecretKey are the root credentials, the same on every
	// server.
	AccessKey string
	SecretKey string

	t testing.TB
}

// clusterReadyPath answers 200 once the server is up and the cluster has
// write quorum.
const clusterReadyPath = "/minio/health/cluster"

// StartMinIOCluster starts n MinIO servers (4 or more for an erasure set
// that survives the loss of one) as one distributed deployment and waits
// until every one of them reports that the cluster has write quorum. The
// test fails (it is never skipped) when the binary is missing. Every
// server is killed when the test ends.
func StartMinIOCluster(t testing.TB, n int) *MinIOCluster {
	t.Helper()
	if n < 2 {
		t.Fatalf("testutil: a distributed MinIO needs 2 servers or more, not %d", n)
	}
	bin, err := FindMinIO()
	if err != nil {
		t.Fatal(err)
	}
	// The drives' directory first: cleanups run last-registered-first, so
	// the servers are killed before their drives are removed.
	root := t.TempDir()
	c := &MinIOCluster{t: t, AccessKey: "u" + randomHex(8), SecretKey: "s" + randomHex(16)}
	t.Cleanup(func() {
		c.killAll()
		if t.Failed() {
			for i, m := range c.Servers {
				t.Logf("MinIO server %d log tail:\n%s", i, m.LogTail(2048))
			}
		}
	})
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		// Fresh drives on every attempt: a failed start may have formatted
		// some of them for endpoints on other ports.
		dir := filepath.Join(root, fmt.Sprintf("try%d", attempt))
		if c.Servers, err = newClusterServers(t, bin, dir, n, c.AccessKey, c.SecretKey); err != nil {
			t.Fatal(err)
		}
		if lastErr = c.launch(c.Servers...); lastErr == nil {
			return c
		}
		c.killAll()
	}
	t.Fatalf("testutil: distributed MinIO did not start: %v", lastErr)
	return nil
}

// newClusterServers prepares n servers on distinct free ports, every one
// given the whole list of drives: MinIO tells which drive is its own by
// the port of its --address.
func newClusterServers(t testing.TB, bin, dir string, n int, access, secret string) ([]*MinIO, error) {
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	servers := make([]*MinIO, n)
	drives := make([]string, n)
	for i := range servers {
		base := filepath.Join(dir, fmt.Sprintf("server%d", i))
		m := &MinIO{t: t, bin: bin, AccessKey: access, SecretKey: secret,
			DataDir: filepath.Join(base, "drive"), logPath: filepath.Join(base, "minio.log"),
			port: ports[2*i], console: ports[2*i+1], readyPath: clusterReadyPath}
		m.Endpoint = net.JoinHostPort("127.0.0.1", strconv.Itoa(m.port))
		// Explicit URLs, not MinIO's ellipsis syntax: {a...b} expands host
		// and path ranges as a cross product, and free ports are not a range.
		drives[i] = "http://" + m.Endpoint + m.DataDir
		servers[i] = m
	}
	for _, m := range servers {
		m.drives = drives
		m.env = []string{
			// The drives share the root disk, which MinIO refuses in
			// distributed mode outside CI/CD mode (it also caps its buffers).
			"MINIO_CI_CD=1",
			// In a container (/.dockerenv) MinIO waits for 127.0.0.1 to
			// resolve to a non-loopback address before it can tell which
			// endpoint is its own: name it.
			"_MINIO_SERVER_LOCAL=" + m.Endpoint,
		}
	}
	return servers, nil
}

// freePorts returns n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	seen := map[int]bool{}
	var out []int
	for tries := 0; len(out) < n; tries++ {
		if tries > 10*n {
			return nil, errors.New("testutil: not enough distinct free ports")
		}
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, nil
}

// Endpoint is the host:port clients talk to (Servers[0]).
func (c *MinIOCluster) Endpoint() string { return c.Servers[0].Endpoint }

// Client returns a minio-go client of Servers[0] with the root credentials.
func (c *MinIOCluster) Client() *minio.Client { c.t.Helper(); return c.Servers[0].Client() }

// MakeBucket creates a bucket (through Servers[0]) with a random name
// starting with prefix and returns its name.
func (c *MinIOCluster) MakeBucket(prefix string) string {
	c.t.Helper()
	return c.Servers[0].MakeBucket(prefix)
}

// Kill kills the servers of the given indexes with SIGKILL and waits for
// them to exit.
func (c *MinIOCluster) Kill(idx ...int) {
	c.t.Helper()
	for _, i := range idx {
		c.Servers[i].Kill()
	}
}

// Restart starts the servers of the given indexes again (killing any that
// still runs) on their ports and drives, all at once, since a server alone
// cannot come up without a quorum of its peers, and waits until every
// server reports that the cluster has write quorum again.
func (c *MinIOCluster) Restart(idx ...int) {
	c.t.Helper()
	var servers []*MinIO
	for _, i := range idx {
		c.Servers[i].kill()
		servers = append(servers, c.Servers[i])
	}
	if err := c.launch(servers...); err != nil {
		c.t.Fatalf("testutil: restart MinIO servers %v: %v", idx, err)
	}
}

// launch starts servers (without waiting between them: none is ready
// before a quorum of them runs) and waits until every running server of
// the cluster answers 200 on its cluster health endpoint.
func (c *MinIOCluster) launch(servers ...*MinIO) error {
	for _, m := range servers {
		if _, err := m.launch(); err != nil {
			return err
		}
	}
	var errs []string
	for i, m := range c.Servers {
		m.mu.Lock()
		done := m.done
		running := m.cmd != nil
		m.mu.Unlock()
		if !running {
			continue
		}
		if err := m.waitReady(done, 60*time.Second); err != nil {
			errs = append(errs, fmt.Sprintf("server %d: %v\nlog:\n%s", i, err, m.LogTail(2048)))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return c.waitWritable(60 * time.Second)
}

// waitWritable waits until an object can be written and removed: a
// cluster that reports write quorum may still answer SlowDownWrite (503)
// for a while after servers came back, until its drives are in use again.
func (c *MinIOCluster) waitWritable(d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	mc := c.Client()
	const bucket = "testutil-write-probe"
	var err error
	for {
		err = mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{})
		if err != nil && minio.ToErrorResponse(err).Code == "BucketAlreadyOwnedByYou" {
			err = nil
		}
		if err == nil {
			_, err = mc.PutObject(ctx, bucket, "probe", strings.NewReader("probe"), 5, minio.PutObjectOptions{})
		}
		if err == nil {
			err = mc.RemoveObject(ctx, bucket, "probe", minio.RemoveObjectOptions{})
		}
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the cluster does not take writes after %v: %w", d, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *MinIOCluster) killAll() {
	for _, m := range c.Servers {
		m.kill()
	}
}

// Healthy asks Servers[0] whether the cluster has write quorum now.
func (c *MinIOCluster) Healthy(ctx context.Context) bool {
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Servers[0].URL()+clusterReadyPath, nil)
	if err != nil {
		return false
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
