package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-migrate/etcd-migrate/internal/cluster"
	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// TestHARollingDowngrade: the documented one-minor rolling downgrade of a cluster
// of 3 members serving 3.7.3: `downgrade enable 3.6` on the running cluster, then
// one member at a time restarted through migrate with TARGET_VERSION=3.6.16 (exec).
// Each member serves 3.6.16 in turn, migrate leaves the operator's downgrade job
// alone (etcd ends it once every member runs 3.6), a writer loses no acknowledged
// write, and the generated keyspace is intact on every member.
func TestHARollingDowngrade(t *testing.T) {
	// haMinAcked: acknowledged puts the writer must have had, each read back.
	const haMinAcked = 20
	binDir := etcdtest.BinDir(t)
	c := cluster.Generate(t, binDir, "3.6.16", haKeys)
	want, id := haBaseline(t, c)

	// The cluster runs 3.7.3 as migrate would have left it.
	c.Serve(t, "3.7.3")
	if err := c.WaitClusterVersion("3.7.0", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Members {
		if err := os.WriteFile(filepath.Join(m.DataDir, "version.txt"), []byte("3.7.3/etcd3\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cli, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, a := range []clientv3.DowngradeAction{clientv3.DowngradeValidate, clientv3.DowngradeEnable} {
		if _, err := cli.Downgrade(ctx, a, "3.6"); err != nil {
			t.Fatalf("downgrade %v 3.6: %v", a, err)
		}
	}
	if err := c.WaitClusterVersion("3.6.0", 2*time.Minute); err != nil {
		t.Fatal(err)
	}

	const prefix = "/ha-writer/"
	w := c.StartWriter(t, prefix)
	time.Sleep(time.Second)
	for _, m := range c.Members {
		start := time.Now()
		if c.StopMember(m) {
			t.Fatalf("%s: etcd 3.7.3 did not stop on SIGTERM", m.Name)
		}
		r := c.RunMigrate(t, m, "3.6.16", nil)
		if _, err := m.WaitServer("3.6.16", 3*time.Minute); err != nil {
			t.Fatalf("%v\n%s", err, r.Summary())
		}
		select {
		case <-r.Done():
			t.Fatalf("%s: migrate exited instead of staying etcd 3.6.16:\n%s", m.Name, r.Summary())
		default:
		}
		t.Logf("%s: stop 3.7.3 -> serving 3.6.16 through migrate: %v", m.Name, time.Since(start).Round(time.Millisecond))
	}
	// etcd ends the job once every member runs 3.6.
	deadline := time.Now().Add(time.Minute)
	for {
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := cli.Status(sctx, c.Members[0].ClientURL)
		scancel()
		if err == nil && (st.DowngradeInfo == nil || !st.DowngradeInfo.Enabled) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the downgrade job is still enabled a minute after every member runs 3.6.16: %v %v", st, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	acked, failed, gap := w.Stop()
	// Zero acknowledged puts would pass the read-back below vacuously.
	if acked < haMinAcked {
		t.Fatalf("the writer got %d acknowledged puts (%d failed), want at least %d", acked, failed, haMinAcked)
	}
	// Verify reads every acknowledged put back (a linearizable read): present, with
	// its value.
	if diffs := w.Verify(t, c, 10); len(diffs) > 0 {
		t.Fatalf("%d acknowledged puts, lost: %v", acked, diffs)
	}
	t.Logf("writer: %d acknowledged (at least %d required), all read back; %d failed, longest gap between acknowledged puts %v", acked, haMinAcked, failed, gap.Round(time.Millisecond))
	if err := c.WaitSettled(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Members {
		got := c.Dump(t, m)
		for k := range got.Keys {
			if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
				delete(got.Keys, k)
			}
		}
		got.Revision = want.Revision
		if diffs := etcdtest.Compare(want, got, 10); len(diffs) > 0 {
			t.Fatalf("%s: generated keyspace changed: %v", m.Name, diffs)
		}
		if gid := c.Identity(t, m); gid.ClusterID != id.ClusterID {
			t.Fatalf("%s: cluster %x, want %x", m.Name, gid.ClusterID, id.ClusterID)
		}
		if got := readVersionTxt(t, m.DataDir); got != "3.6.16/etcd3\n" {
			t.Fatalf("%s version.txt = %q", m.Name, got)
		}
	}
}
