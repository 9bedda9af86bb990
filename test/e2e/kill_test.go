package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// TestKillDuringRollback SIGKILLs migrate at several points of a 3.7.3 -> 3.4.13
// rollback chain (downgrades, the snapshot restore, the swaps), then reruns it: the
// rerun must converge to 3.4.13/etcd3 with the original keyspace, and between the
// kill and the rerun version.txt must name a state the data agrees with.
func TestKillDuringRollback(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	pristine := etcdtest.ExtractFixture(t, fixture34)
	want := baseline34(t, binDir, pristine)
	walked := etcdtest.CopyDir(t, pristine)
	if r := runMigrate(t, binDir, walked, nil, "--target-version=3.7.3", "--exec=false"); r.code != 0 {
		t.Fatalf("walk: exit %d\n%s", r.code, r.stderr)
	}
	delays := []time.Duration{300 * time.Millisecond, 2500 * time.Millisecond, 5 * time.Second, 9 * time.Second, 13 * time.Second}
	if testing.Short() {
		delays = delays[1:3]
	}
	for _, d := range delays {
		dataDir := etcdtest.CopyDir(t, walked)
		cmd := migrateCmd(t, binDir, dataDir, nil, "--target-version=3.4.13", "--exec=false")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(d)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		etcdtest.WaitChildrenGone(t, dataDir, 5*time.Second)
		st := runMigrate(t, binDir, dataDir, nil, "status")
		if st.code != 0 {
			t.Fatalf("kill after %v: status after the kill: exit %d\n%s%s\nmigrate log:\n%s", d, st.code, st.stdout, st.stderr, stderr.String())
		}
		r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.4.13", "--exec=false")
		if r.code != 0 {
			t.Fatalf("kill after %v: rerun exit %d\n%s\nkilled run's log:\n%s", d, r.code, r.stderr, stderr.String())
		}
		if got := readVersionTxt(t, dataDir); got != "3.4.13/etcd3\n" {
			t.Fatalf("kill after %v: version.txt = %q", d, got)
		}
		assertServedKeyspace(t, binDir, "3.4.13", dataDir, want, fmt.Sprintf("kill after %v", d))
		t.Logf("killed after %v (%s); rerun converged", d, lastStep(stderr.String()))
	}
}

// lastStep names the last step a log reached.
func lastStep(log string) string {
	last := "before any step"
	for _, l := range strings.Split(log, "\n") {
		if i := strings.Index(l, "version_txt="); i >= 0 && strings.Contains(l, `msg="step done"`) {
			last = "after recording " + strings.Fields(l[i:])[0]
		}
	}
	return last
}
