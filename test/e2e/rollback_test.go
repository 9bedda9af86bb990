package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// TestRollback37To34AndBack walks the 3.4.13 fixture up to 3.7.3, rolls it back one
// minor at a time to 3.4.13 (3.7 -> 3.6 -> 3.5 by etcd's downgrade API, 3.5 -> 3.4 by
// snapshot save and restore), and walks it up again: after every move the keyspace served by that version equals the
// original — keys, values, revisions, versions, leases and the store revision.
func TestRollback37To34AndBack(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	pristine := etcdtest.ExtractFixture(t, fixture34)
	want := baseline34(t, binDir, pristine)
	dataDir := etcdtest.CopyDir(t, pristine)
	for _, target := range []string{"3.7.3", "3.6.16", "3.5.35", "3.4.13", "3.7.3"} {
		before := etcdtest.Checksum(t, dataDir)
		r := runMigrate(t, binDir, dataDir, nil, "--target-version="+target, "--exec=false")
		if r.code != 0 {
			t.Fatalf("to %s: exit %d\n%s", target, r.code, r.stderr)
		}
		// Every run that changes data first leaves a complete copy of it.
		bak := dataDir + ".bak"
		if fi, err := os.Stat(bak); err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("to %s: backup %s: %v (mode %v), want a 0700 dir", target, bak, err, fi.Mode())
		}
		if etcdtest.Checksum(t, bak) != before {
			t.Fatalf("to %s: the backup differs from the data dir before the run", target)
		}
		if got := readVersionTxt(t, dataDir); got != target+"/etcd3\n" {
			t.Fatalf("to %s: version.txt = %q", target, got)
		}
		assertServedKeyspace(t, binDir, target, dataDir, want, "after moving to "+target)
		if target == "3.5.35" && !strings.Contains(r.stderr, "kind=rollback-minor from=3.6.16/etcd3 version_txt=3.5.35/etcd3") {
			t.Fatalf("no 3.6 -> 3.5 rollback step logged:\n%s", r.stderr)
		}
		if target == "3.6.16" || target == "3.5.35" {
			// The lone member's Via etcd was restarted after enabling the job (its
			// version monitor acts at a new term's first commit, not 4 s later),
			// and no downgrade job is left in the data.
			if !strings.Contains(r.stderr, "via_restarted=true") {
				t.Fatalf("to %s: the downgrade did not restart its Via etcd:\n%s", target, r.stderr)
			}
			assertNoDowngradeJob(t, binDir, target, etcdtest.CopyDir(t, dataDir))
		}
		if target == "3.4.13" && !strings.Contains(r.stderr, "snapshot_restore_ms=") {
			t.Fatalf("no 3.5 -> 3.4 snapshot restore logged:\n%s", r.stderr)
		}
	}
	st := runMigrate(t, binDir, dataDir, nil, "status")
	if !strings.Contains(st.stdout, "storage version 3.7.0, cluster version 3.7.0") {
		t.Fatalf("status after re-upgrade:\n%s", st.stdout)
	}
}

// assertNoDowngradeJob serves dataDir with etcd-<version> (its monitor's first
// check is 5 s away) and checks that no downgrade job is left: 3.6+ reports a job
// in its status (and answers any cancel with success); 3.5 reports none, so there
// "no inflight downgrade" in answer to a cancel is the proof (its cancel of a
// pending job never answers).
func assertNoDowngradeJob(t *testing.T, binDir, version, dataDir string) {
	t.Helper()
	s := etcdtest.Serve(t, binDir, version, dataDir)
	defer s.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if !strings.HasPrefix(version, "3.5.") {
		st, err := s.Client.Status(ctx, s.ClientURL)
		if err != nil || (st.DowngradeInfo != nil && st.DowngradeInfo.Enabled) {
			t.Fatalf("etcd %s: a downgrade job is left in the data (status %+v, %v)", version, st, err)
		}
		return
	}
	_, err := s.Client.Downgrade(ctx, clientv3.DowngradeCancel, "")
	if err == nil || !strings.Contains(err.Error(), rpctypes.ErrorDesc(rpctypes.ErrGRPCNoInflightDowngrade)) {
		t.Fatalf("etcd %s: a downgrade job is left in the data (cancel answered %v)", version, err)
	}
}
