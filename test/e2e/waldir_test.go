package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// TestSeparateWALDir: a member whose WAL lives outside the data dir (etcd's
// --wal-dir, here through ETCD_WAL_DIR as a manifest would set it) walks up and
// rolls back through the downgrade API with its WAL where it is; the steps that
// write a new member dir, and a WAL dir without the member's WAL, are refused
// before anything is touched.
func TestSeparateWALDir(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	pristine := etcdtest.ExtractFixture(t, fixture34)
	want := baseline34(t, binDir, pristine)
	dataDir := etcdtest.CopyDir(t, pristine)
	walDir := filepath.Join(t.TempDir(), "wal")
	if err := os.Rename(filepath.Join(dataDir, "member", "wal"), walDir); err != nil {
		t.Fatal(err)
	}
	env := []string{"ETCD_WAL_DIR=" + walDir}

	t.Run("an empty WAL dir is refused", func(t *testing.T) {
		empty := t.TempDir()
		sum := etcdtest.Checksum(t, dataDir)
		r := runMigrate(t, binDir, dataDir, []string{"ETCD_WAL_DIR=" + empty}, "--target-version=3.5.35", "--exec=false")
		if r.code != 2 || !strings.Contains(errorLine(t, r), "migrate: error: the WAL dir "+empty+" (--wal-dir/ETCD_WAL_DIR) holds no WAL files, but the data dir "+dataDir+" holds etcd data: point --wal-dir at this member's WAL") {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
		if etcdtest.Checksum(t, dataDir) != sum {
			t.Fatal("the refused run changed the data dir")
		}
	})

	r := runMigrate(t, binDir, dataDir, env, "--target-version=3.7.3", "--exec=false")
	if r.code != 0 {
		t.Fatalf("walk with a separate WAL dir: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "member", "wal")); !os.IsNotExist(err) {
		t.Fatalf("a step wrote a WAL into the data dir: %v", err)
	}
	assertServedWAL := func(version string) {
		t.Helper()
		s := etcdtest.ServeArgs(t, binDir, version, dataDir, "--wal-dir="+walDir)
		got := s.DumpAll(t)
		s.Stop()
		if diffs := etcdtest.Compare(want, got, 10); len(diffs) > 0 {
			t.Fatalf("served by %s with --wal-dir: differs from the original:\n%s", version, strings.Join(diffs, "\n"))
		}
	}
	assertServedWAL("3.7.3")
	// The backup is a complete data dir: the WAL is in its member/wal, and etcd
	// 3.4.13 serves it without --wal-dir.
	bak := etcdtest.CopyDir(t, dataDir+".bak")
	if wals, _ := filepath.Glob(filepath.Join(bak, "member", "wal", "*.wal")); len(wals) == 0 {
		t.Fatalf("the backup holds no WAL in member/wal")
	}
	assertServedKeyspace(t, binDir, "3.4.13", bak, want, "the backup of a data dir with a separate WAL dir")

	r = runMigrate(t, binDir, dataDir, env, "--target-version=3.5.35", "--exec=false")
	if r.code != 0 {
		t.Fatalf("rollback 3.7 -> 3.5 with a separate WAL dir: exit %d\n%s", r.code, r.stderr)
	}
	if got := readVersionTxt(t, dataDir); got != "3.5.35/etcd3\n" {
		t.Fatalf("version.txt = %q", got)
	}
	assertServedWAL("3.5.35")

	sum, walSum := etcdtest.Checksum(t, dataDir), etcdtest.Checksum(t, walDir)
	r = runMigrate(t, binDir, dataDir, env, "--target-version=3.4.13", "--exec=false")
	if r.code != 2 || !strings.Contains(errorLine(t, r), "a separate WAL dir ("+walDir+") is not supported for this step, which writes a new member dir: move the WAL into "+filepath.Join(dataDir, "member", "wal")) {
		t.Fatalf("rollback 3.5 -> 3.4 (snapshot restore) with a separate WAL dir: exit %d, want 2\n%s", r.code, r.stderr)
	}
	if etcdtest.Checksum(t, dataDir) != sum || etcdtest.Checksum(t, walDir) != walSum {
		t.Fatal("the refused run changed the data or WAL dir")
	}
}
