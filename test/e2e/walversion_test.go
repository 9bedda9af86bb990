package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/pkg/datadir"
	"github.com/etcd-migrate/etcd-migrate/pkg/etcdproc"
)

// killAfterClusterVersion runs etcd-<v> on dataDir and SIGKILLs it as soon as
// /version reports the cluster version at v's minor: the version is in the WAL, and
// the backend (committed every 100 ms) may not have it yet.
func killAfterClusterVersion(t *testing.T, binDir, v, dataDir string) {
	t.Helper()
	port, peer := etcdtest.FreePort(t), etcdtest.FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	cmd := exec.Command(filepath.Join(binDir, "etcd-"+v), "--name=etcd-member", "--data-dir="+dataDir,
		"--listen-client-urls="+url, "--advertise-client-urls="+url,
		fmt.Sprintf("--listen-peer-urls=http://127.0.0.1:%d", peer), "--heartbeat-interval=10", "--election-timeout=100")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	minor := v[:strings.LastIndex(v, ".")]
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if sv, err := etcdproc.GetVersions(context.Background(), url); err == nil && etcdproc.AtMinor(sv.Cluster, minor) {
			cmd.Process.Kill()
			return
		}
	}
	t.Fatalf("etcd %s did not reach cluster version %s", v, minor)
}

// TestCutShortInWALOnly: a 3.5 step killed right after its etcd raised the cluster
// version, before the backend committed it, leaves 3.5.0 in the WAL only (the
// backend still says 3.4.0). etcd 3.4.13 replays that entry and refuses the data;
// migrate reads the WAL tail, plans from 3.5, and a target of 3.4.13 is a rollback
// that ends with 3.4.13 serving every key.
func TestCutShortInWALOnly(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	pristine := etcdtest.ExtractFixture(t, fixture34)
	want := baseline34(t, binDir, pristine)
	var dataDir string
	for try := 0; ; try++ {
		dataDir = etcdtest.CopyDir(t, pristine)
		killAfterClusterVersion(t, binDir, "3.5.35", dataDir)
		st, err := datadir.Detect(dataDir)
		if err != nil {
			t.Fatal(err)
		}
		if st.ClusterVersion == "3.4.0" && st.WALClusterVersion == "3.5.0" {
			break
		}
		if try == 5 {
			t.Fatalf("the backend committed the cluster version before every kill: %+v", st)
		}
	}
	if etcdtest.Serves(t, binDir, "3.4.13", etcdtest.CopyDir(t, dataDir)) {
		t.Fatalf("etcd 3.4.13 serves data whose WAL sets cluster version 3.5: the case is not what this test needs")
	}
	p := runMigrate(t, binDir, dataDir, nil, "plan", "--target-version=3.4.13")
	wantStep := "step 1: rollback-minor 3.5.x/etcd3 -> 3.4.13/etcd3 (snapshot with etcd-3.5.35, restore with etcdctl-3.4.13, then run etcd-3.4.13)\n"
	if p.code != 0 || !strings.Contains(p.stdout, "cluster version 3.5.0 in the WAL, not yet in the backend") || !strings.HasSuffix(p.stdout, wantStep) {
		t.Fatalf("plan: exit %d\n%s%s", p.code, p.stdout, p.stderr)
	}
	r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.4.13", "--exec=false")
	if r.code != 0 {
		t.Fatalf("rollback: exit %d\n%s", r.code, r.stderr)
	}
	if got := readVersionTxt(t, dataDir); got != "3.4.13/etcd3\n" {
		t.Fatalf("version.txt = %q", got)
	}
	assertServedKeyspace(t, binDir, "3.4.13", dataDir, want, "rollback after a 3.5 step cut short with its version in the WAL only")
}
