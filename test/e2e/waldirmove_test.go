package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// TestSeparateWALDirMoveCommand: on data the real etcd 3.4.13 wrote with --wal-dir
// (no member/wal in the data dir), a step that writes a new member dir is refused
// with a command that moves the WAL into the data dir; running that command, then
// migrating without the WAL dir, works.
func TestSeparateWALDirMoveCommand(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	walDir := filepath.Join(t.TempDir(), "wal")
	s := etcdtest.ServeArgs(t, binDir, "3.4.13", dataDir, "--wal-dir="+walDir)
	keys := map[string]string{"/registry/pods/ns/a": `{"kind":"Pod","metadata":{"name":"a"}}`, "/registry/services/ns/b": `{"kind":"Service"}`}
	for k, v := range keys {
		if _, err := s.Client.Put(context.Background(), k, v); err != nil {
			t.Fatal(err)
		}
	}
	s.Stop()
	if err := writeFile(filepath.Join(dataDir, "version.txt"), "3.4.13/etcd3\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "member", "wal")); !os.IsNotExist(err) {
		t.Fatalf("etcd 3.4.13 with --wal-dir left a member/wal: %v", err)
	}

	sum := etcdtest.Checksum(t, dataDir)
	r := runMigrate(t, binDir, dataDir, []string{"ETCD_WAL_DIR=" + walDir}, "--target-version=3.4.13", "--target-storage=etcd2", "--exec=false")
	line := errorLine(t, r)
	m := regexp.MustCompile(`\(etcd stopped: (.*?)\) and drop`).FindStringSubmatch(line)
	if r.code != 2 || m == nil {
		t.Fatalf("exit %d, want 2 with the command that moves the WAL:\n%s", r.code, r.stderr)
	}
	if etcdtest.Checksum(t, dataDir) != sum {
		t.Fatal("the refused run changed the data dir")
	}
	want := "mkdir -p " + dataDir + "/member/wal && mv " + walDir + "/* " + dataDir + "/member/wal/"
	if m[1] != want {
		t.Fatalf("command %q, want %q", m[1], want)
	}
	if out, err := exec.Command("sh", "-c", m[1]).CombinedOutput(); err != nil {
		t.Fatalf("the printed command %q failed: %v: %s", m[1], err, out)
	}

	r = runMigrate(t, binDir, dataDir, nil, "--target-version=3.4.13", "--target-storage=etcd2", "--exec=false")
	if r.code != 0 {
		t.Fatalf("after the move: exit %d\n%s", r.code, r.stderr)
	}
	if got := readVersionTxt(t, dataDir); got != "3.4.13/etcd2\n" {
		t.Fatalf("version.txt = %q", got)
	}
	v2 := etcdtest.ServeV2(t, binDir, "3.4.13", dataDir)
	dump := etcdtest.DumpV2(t, v2.ClientURL)
	v2.Stop()
	for k, v := range keys {
		if dump[k].Value != v {
			t.Errorf("%s served by etcd 3.4.13 (v2) = %q, want %q", k, dump[k].Value, v)
		}
	}
}
