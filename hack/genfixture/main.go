// Command genfixture writes a real etcd3 data dir with a given bundled etcd binary:
// puts, overwrites, deletes and leased keys through the v3 API, then a graceful stop
// and a version.txt. It packs the dir as a .tar.gz (WAL segments are sparse 64 MiB
// files, so tar runs with --sparse).
//
//	go run ./hack/genfixture -bin-dir _output/bin -version 3.4.13 -keys 2400 -out testdata/etcd3-3.4.13.tar.gz
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func main() {
	binDir := flag.String("bin-dir", "_output/bin", "directory with etcd-<version>")
	ver := flag.String("version", "3.4.13", "etcd version that writes the data")
	keys := flag.Int("keys", 2400, "keys to put (about 10% are overwritten, 8% deleted, 5% leased)")
	valueSize := flag.Int("value-size", 300, "mean value size in bytes")
	out := flag.String("out", "", "output .tar.gz (required)")
	port := flag.Int("port", 23790, "client port of the generating etcd")
	flag.Parse()
	if *out == "" {
		log.Fatal("-out is required")
	}
	if err := generate(*binDir, *ver, *keys, *valueSize, *out, *port); err != nil {
		log.Fatal(err)
	}
}

func generate(binDir, ver string, keys, valueSize int, out string, port int) error {
	work, err := os.MkdirTemp("", "genfixture-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	dataDir := filepath.Join(work, "data")
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	peerURL := fmt.Sprintf("http://localhost:%d", port+1)
	args := []string{
		"--name=etcd-member", "--data-dir=" + dataDir,
		"--listen-client-urls=" + clientURL, "--advertise-client-urls=" + clientURL,
		"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=http://localhost:2380",
		"--initial-cluster=etcd-member=http://localhost:2380",
		// A small snapshot count leaves both snapshots and a WAL tail after them.
		"--snapshot-count=500",
	}
	if strings.HasPrefix(ver, "3.4.") {
		args = append(args, "--logger=zap")
	}
	cmd := exec.Command(filepath.Join(binDir, "etcd-"+ver), args...)
	logf, _ := os.Create(filepath.Join(work, "etcd.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	defer cmd.Process.Kill()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{clientURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for i := 0; ; i++ {
		if _, err := c.Put(ctx, "/registry/health-probe", "x"); err == nil {
			break
		} else if i > 500 {
			return fmt.Errorf("etcd did not start: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := c.Delete(ctx, "/registry/health-probe"); err != nil {
		return err
	}
	rng := rand.New(rand.NewSource(42))
	// Kubernetes-like JSON: a random uid and a filler of variable length.
	const filler = "spec: containers image registry.k8s.io/pause:3.9 resources requests cpu 100m memory 64Mi; "
	value := func(k string) string {
		n := valueSize/2 + rng.Intn(valueSize)
		pad := strings.Repeat(filler, n/len(filler)+1)[:n]
		return fmt.Sprintf(`{"kind":"Object","metadata":{"name":%q,"uid":"%016x"},"data":%q}`, k, rng.Uint64(), pad)
	}
	// Ten leases, long-lived so they outlive any test; keys share them like
	// Kubernetes events do.
	var leases []clientv3.LeaseID
	for i := 0; i < 10; i++ {
		l, err := c.Grant(ctx, int64(3600+i*60))
		if err != nil {
			return err
		}
		leases = append(leases, l.ID)
	}
	var names []string
	for i := 0; i < keys; i++ {
		var k string
		var opts []clientv3.OpOption
		switch {
		case i%20 == 7:
			k = fmt.Sprintf("/registry/events/ns-%d/event-%d", i%13, i)
			opts = append(opts, clientv3.WithLease(leases[i%len(leases)]))
		case i%50 == 11:
			k = fmt.Sprintf("/outside/prefix/key-%d", i)
		default:
			k = fmt.Sprintf("/registry/pods/ns-%d/pod-%d", i%17, i)
		}
		if _, err := c.Put(ctx, k, value(k), opts...); err != nil {
			return err
		}
		names = append(names, k)
	}
	for i, k := range names {
		if strings.Contains(k, "/events/") {
			continue
		}
		switch {
		case i%10 == 3: // overwrite, some twice
			for j := 0; j <= i%2; j++ {
				if _, err := c.Put(ctx, k, value(k)); err != nil {
					return err
				}
			}
		case i%12 == 5:
			if _, err := c.Delete(ctx, k); err != nil {
				return err
			}
		}
	}
	c.Close()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		return err
	}
	// etcd re-raises the signal after a graceful stop, so Wait reports it.
	_ = cmd.Wait()
	if err := os.WriteFile(filepath.Join(dataDir, "version.txt"), []byte(ver+"/etcd3\n"), 0o644); err != nil {
		return err
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	tar := exec.Command("tar", "--sparse", "--numeric-owner", "--owner=0", "--group=0", "--mtime=2026-01-01", "-czf", abs, "-C", dataDir, ".")
	tar.Stderr = os.Stderr
	if err := tar.Run(); err != nil {
		return fmt.Errorf("tar: %w", err)
	}
	fmt.Printf("wrote %s (%d puts, etcd %s)\n", out, keys, ver)
	return nil
}
