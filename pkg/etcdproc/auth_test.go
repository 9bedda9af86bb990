package etcdproc

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// realEtcd is the bundled etcd-<v> that `make etcd-binaries` built.
func realEtcd(t *testing.T, v string) string {
	t.Helper()
	dir := os.Getenv("ETCD_MIGRATE_BIN_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "_output", "bin")
	}
	bin, err := filepath.Abs(filepath.Join(dir, "etcd-"+v))
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		t.Fatalf("etcd-%s: %v: run `make etcd-binaries` first (or use `make test`)", v, err)
	}
	return bin
}

func freeURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "http://127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// TestStepIdentityOnAuthEnabledData runs the real etcd 3.6.16 on data with auth
// enabled: with the step's own identity (CN root) the readiness write, a snapshot
// and the downgrade API (root only) pass etcd's auth; with another CN the
// downgrade API refuses, and that refusal is permanent (the step fails at once, not
// after --step-timeout).
func TestStepIdentityOnAuthEnabledData(t *testing.T) {
	peer := freeURL(t)
	cfg := Config{
		Member: Member{Name: "m", ClientURL: freeURL(t), ListenPeerURLs: peer,
			InitialAdvertisePeerURLs: peer, InitialCluster: "m=" + peer},
		Binary: realEtcd(t, "3.6.16"), Version: versionfile.MustVersion("3.6.16"),
		DataDir: filepath.Join(t.TempDir(), "data"), SnapshotCount: 1, StopTimeout: 10 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run := func(user string, fn func(p *Process, c *clientv3.Client)) {
		t.Helper()
		cfg.user = user
		p, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Stop()
		if _, err := p.WaitMinor(ctx); err != nil {
			t.Fatal(err)
		}
		c, err := p.Client()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fn(p, c)
	}
	run("", func(_ *Process, c *clientv3.Client) {
		for i, op := range []func() error{
			func() error { _, err := c.UserAdd(ctx, "root", "pw"); return err },
			func() error { _, err := c.RoleAdd(ctx, "root"); return err },
			func() error { _, err := c.UserGrantRole(ctx, "root", "root"); return err },
			func() error { _, err := c.AuthEnable(ctx); return err },
		} {
			if err := op(); err != nil {
				t.Fatalf("auth setup %d: %v", i, err)
			}
		}
	})
	run("", func(p *Process, c *clientv3.Client) {
		if err := p.WaitWrite(ctx, c); err != nil {
			t.Fatalf("readiness write as root: %v", err)
		}
		if _, err := p.SaveSnapshot(ctx, c); err != nil {
			t.Fatalf("snapshot as root: %v", err)
		}
		if _, err := c.Downgrade(ctx, clientv3.DowngradeValidate, "3.5"); err != nil {
			t.Fatalf("downgrade validate as root: %v", err)
		}
	})
	run("nobody", func(p *Process, c *clientv3.Client) {
		start := time.Now()
		err := Downgrade(ctx, c, "3.5")
		if err == nil || !Permanent(err) || !strings.Contains(err.Error(), "user name not found") {
			t.Fatalf("downgrade as a user etcd does not know: %v (permanent %v), want a permanent \"user name not found\"", err, Permanent(err))
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("the refusal took %v", took)
		}
	})
}
