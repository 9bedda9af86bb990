package e2e

import (
	"os"
	"strings"
	"testing"

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
		if target == "3.4.13" && !strings.Contains(r.stderr, "snapshot_restore_ms=") {
			t.Fatalf("no 3.5 -> 3.4 snapshot restore logged:\n%s", r.stderr)
		}
	}
	st := runMigrate(t, binDir, dataDir, nil, "status")
	if !strings.Contains(st.stdout, "storage version 3.7.0, cluster version 3.7.0") {
		t.Fatalf("status after re-upgrade:\n%s", st.stdout)
	}
}
