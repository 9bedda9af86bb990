package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// TestEmptyDirEtcd2TargetWithoutV2API: TARGET_STORAGE=etcd2 with an etcd that has
// no v2 API (3.6+) is refused for an empty data dir too — exit 2 within seconds,
// one line naming the target and the fix, before version.txt is written (a missing
// data dir is not left behind, an existing empty one stays empty). plan says the
// same. etcd 3.5 with etcd2 is still accepted for an empty dir.
func TestEmptyDirEtcd2TargetWithoutV2API(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	env := []string{"TARGET_STORAGE=etcd2", "TARGET_VERSION=3.6.16"}
	want := "empty data dir -> 3.6.16/etcd2: etcd 3.6.16 serves no v2 API (etcd2 storage ends with 3.5): target an etcd 3.5 or older, or set TARGET_STORAGE=etcd3"

	missing := filepath.Join(t.TempDir(), "data")
	empty := t.TempDir()
	for _, tc := range []struct {
		name, dataDir string
		args          []string
	}{
		{"missing data dir", missing, []string{"--exec=false"}},
		{"empty data dir", empty, []string{"--exec=false"}},
		{"empty data dir, exec", empty, []string{"--", "--name=etcd-member"}},
		{"plan", empty, []string{"plan"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := runMigrate(t, binDir, tc.dataDir, env, tc.args...)
			took := time.Since(start)
			if line := errorLine(t, r); r.code != 2 || !strings.Contains(line, want) {
				t.Fatalf("exit %d, %s\nwant exit 2 and %q", r.code, line, want)
			}
			if tc.dataDir == missing {
				if _, err := os.Lstat(missing); err == nil {
					t.Fatalf("the refused run left %s behind", missing)
				}
			} else if es, _ := os.ReadDir(tc.dataDir); len(es) != 0 {
				t.Fatalf("the refused run wrote %v", es)
			}
			t.Logf("exit 2 in %v", took.Round(time.Millisecond))
		})
	}

	// 3.5 serves the v2 API: an empty dir gets 3.5.35/etcd2.
	r := runMigrate(t, binDir, empty, []string{"TARGET_STORAGE=etcd2", "TARGET_VERSION=3.5.35"}, "--exec=false")
	if r.code != 0 {
		t.Fatalf("3.5.35/etcd2 on an empty dir: exit %d\n%s", r.code, r.stderr)
	}
	if got := readVersionTxt(t, empty); got != "3.5.35/etcd2\n" {
		t.Fatalf("version.txt %q", got)
	}
}
