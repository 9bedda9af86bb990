package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// TestExecReplacesProcess: without --exec=false, migrate walks the data and then
// becomes etcd 3.7.3 itself (same PID), serving the args given after --, still
// holding the data dir lock so no second migrator can touch the live data.
func TestExecReplacesProcess(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	dataDir := etcdtest.ExtractFixture(t, fixture34)
	port, peer := etcdtest.FreePort(t), etcdtest.FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	cmd := migrateCmd(t, binDir, dataDir, nil, "--target-version=3.7.3", "--",
		"--name=etcd-member", "--listen-client-urls="+url, "--advertise-client-urls="+url,
		fmt.Sprintf("--listen-peer-urls=http://127.0.0.1:%d", peer))
	pid, v, _ := execServing(t, cmd, url, "3.7.3")
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(exe, "/etcd-3.7.3") {
		t.Fatalf("pid %d runs %s, want etcd-3.7.3", pid, exe)
	}
	if v.Cluster != "3.7.0" || v.Storage != "3.7.0" {
		t.Fatalf("exec'd etcd reports %+v, want cluster and storage 3.7.0", v)
	}
	if got := readVersionTxt(t, dataDir); got != "3.7.3/etcd3\n" {
		t.Fatalf("version.txt = %q", got)
	}
	r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.7.3", "--exec=false")
	if line := errorLine(t, r); r.code != 2 || !strings.Contains(line, fmt.Sprintf("another migrate holds the lock on %s (pid %d", dataDir, pid)) {
		t.Fatalf("second migrator while etcd serves: exit %d, %s", r.code, line)
	}
}
