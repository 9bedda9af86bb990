package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// TestBackupFailsNothingTouched: a backup that cannot be written (here its temp
// dir's name, <data-dir>.bak.tmp-*, is longer than the file system allows) fails
// before the first step: exit 2, as for any refusal before anything is touched,
// with the data dir byte for byte as it was.
func TestBackupFailsNothingTouched(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	dataDir := filepath.Join(t.TempDir(), strings.Repeat("d", 240))
	if err := os.Rename(etcdtest.ExtractFixture(t, fixture34), dataDir); err != nil {
		t.Fatal(err)
	}
	sum := etcdtest.Checksum(t, dataDir)
	r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.5.35", "--exec=false")
	line := errorLine(t, r)
	want := "migrate: error: before step 1/1 (nothing changed yet): backup of " + dataDir + ": mkdir " + dataDir + ".bak.tmp-"
	wantEnd := ": file name too long: the backup " + dataDir + ".bak could not be written; fix that (space, permissions, path) and rerun"
	if r.code != 2 || !strings.HasPrefix(line, want) || !strings.HasSuffix(line, wantEnd) {
		t.Fatalf("exit %d, error line:\n%s\nwant exit 2 and:\n%s...%s", r.code, line, want, wantEnd)
	}
	if etcdtest.Checksum(t, dataDir) != sum {
		t.Fatal("the failed backup changed the data dir")
	}
	if left, _ := filepath.Glob(dataDir + ".bak*"); len(left) > 0 {
		t.Fatalf("the failed backup left %v", left)
	}
}
