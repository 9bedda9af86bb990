package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// restoreRecipe is the shell block of docs/backups-and-failures.md after "To restore
// by hand", with its data dir /var/etcd/data replaced by dataDir.
func restoreRecipe(t *testing.T, dataDir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(etcdtest.RepoRoot(), "docs", "backups-and-failures.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "To restore by hand")
	if !ok {
		t.Fatal(`docs/backups-and-failures.md: no "To restore by hand"`)
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 || !strings.Contains(block, "/var/etcd/data") {
		t.Fatalf("docs/backups-and-failures.md: no sh block on /var/etcd/data after \"To restore by hand\"")
	}
	return strings.ReplaceAll(block, "/var/etcd/data", dataDir)
}

// TestDocsRestoreRecipe: the manual restore of docs/backups-and-failures.md, run
// as written on real data after a migration, with and without version.txt before
// it: it prints what to run again, and that etcd serves the restored data.
func TestDocsRestoreRecipe(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	for _, tc := range []struct {
		name, versionTxt, says string
	}{
		{"with version.txt", "3.4.13/etcd3", "3.4.13/etcd3"},
		{"without version.txt", "", `"before":"3.4.x/etcd3"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			if err := os.Rename(etcdtest.ExtractFixture(t, fixture34), dataDir); err != nil {
				t.Fatal(err)
			}
			if tc.versionTxt == "" {
				writeVersionTxt(t, dataDir, "")
			}
			before := etcdtest.Checksum(t, dataDir)
			if r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.5.35", "--exec=false"); r.code != 0 {
				t.Fatalf("migration: exit %d\n%s", r.code, r.stderr)
			}
			out, err := exec.Command("sh", "-ec", restoreRecipe(t, dataDir)).CombinedOutput()
			if err != nil {
				t.Fatalf("the recipe failed: %v\n%s", err, out)
			}
			if got := strings.TrimSpace(string(out)); got != tc.says {
				t.Fatalf("the recipe printed %q, want %q", got, tc.says)
			}
			if etcdtest.Checksum(t, dataDir) != before {
				t.Fatal("the restored data is not the data before the migration")
			}
			r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.4.13", "--exec=false")
			if r.code != 0 {
				t.Fatalf("run on the restored data: exit %d\n%s", r.code, r.stderr)
			}
			if !etcdtest.Serves(t, binDir, "3.4.13", dataDir) {
				t.Fatal("etcd 3.4.13 does not serve the restored data")
			}
		})
	}
}
