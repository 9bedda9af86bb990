//go:build oldetcd

package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/cluster"
	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// TestOldHALockstepFrom30: three members (https peers, 127.0.0.2-4) of a cluster
// the real etcd 3.0.17 wrote, restarted together (starts staggered by up to a
// second) with TARGET_VERSION=3.4.13: the walk 3.0 -> 3.1 -> 3.2 -> 3.3 -> 3.4
// passes every barrier although etcd 3.0-3.2 cannot list leases (the barrier
// probes its lease IDs there), every member exits 0, and etcd 3.4.13 then serves on
// every member its own copy of every key with its value, create/mod revision and
// version, the leases with their keys, under the same cluster and member IDs, at
// cluster version 3.4.0; version.txt 3.4.13/etcd3.
func TestOldHALockstepFrom30(t *testing.T) {
	binDir := oldBinDir(t, "3.0.17")
	c := cluster.GenerateN(t, binDir, "3.0.17", 40, 3)
	c.Serve(t, "3.0.17")
	want, id, _ := k8sBaseline(t, c, "3.0.17")
	c.StopAll()

	start := time.Now()
	runs := lockstep(t, c, "3.4.13", time.Second, "--exec=false", "--bundled-versions="+seedBundle)
	requireExit(t, runs, 0)
	t.Logf("lockstep 3.0.17 -> 3.4.13 of 3 members: %v", time.Since(start).Round(time.Millisecond))

	c.Serve(t, "3.4.13")
	if err := c.WaitSettled(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Members {
		got := c.Dump(t, m)
		// etcd 3.0 cannot list leases: the baseline knows those with keys.
		for lid, keys := range got.Leases {
			if len(keys) == 0 {
				delete(got.Leases, lid)
			}
		}
		if diffs := etcdtest.Compare(want, got, 10); len(diffs) > 0 {
			t.Fatalf("%s serving 3.4.13: %d+ differences from what 3.0.17 served: %v", m.Name, len(diffs), diffs)
		}
		gid := c.Identity(t, m)
		if gid.ClusterID != id.ClusterID || fmt.Sprint(gid.Members) != fmt.Sprint(id.Members) || gid.MemberID != id.Members[m.Name] {
			t.Fatalf("%s: cluster %x member %x members %v, want cluster %x member %x members %v", m.Name, gid.ClusterID, gid.MemberID, gid.Members, id.ClusterID, id.Members[m.Name], id.Members)
		}
		v, err := m.Versions(t.Context())
		if err != nil || v.Server != "3.4.13" || v.Cluster != "3.4.0" {
			t.Fatalf("%s /version: %+v (%v)", m.Name, v, err)
		}
		if got := readVersionTxt(t, m.DataDir); got != "3.4.13/etcd3\n" {
			t.Fatalf("%s: version.txt %q", m.Name, got)
		}
	}
	t.Logf("every member serves 3.4.13 at cluster version 3.4.0: %d keys at revision %d, %d leases with keys, cluster %x unchanged", len(want.Keys), want.Revision, len(want.Leases), id.ClusterID)
}
