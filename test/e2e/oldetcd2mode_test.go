//go:build oldetcd

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/internal/fixture"
	"github.com/etcd-migrate/etcd-migrate/pkg/fault"
)

// TestOldEtcd2UpgradesInEtcd2 is the seed's etcd2-mode upgrade on data written by
// the real etcd 2.2.5 (nested dirs, TTL keys and dirs, snapshots and a WAL tail),
// without version.txt: 2.2.5/etcd2 -> 2.3.8/etcd2 -> 3.0.17/etcd2, each minor's
// etcd run on the data; the run is killed once inside the 3.0.17 step and rerun.
// The real 3.0.17 then serves every v2 key with its value, createdIndex,
// modifiedIndex and TTL as 2.2.5 served it, and the data walks on to 3.7.3/etcd3.
func TestOldEtcd2UpgradesInEtcd2(t *testing.T) {
	binDir := oldBinDir(t, "2.2.5")
	dataDir := filepath.Join(t.TempDir(), "data")
	var want map[string]etcdtest.V2Node
	err := fixture.GenerateEtcd2Old(binDir, "2.2.5", fixture.Etcd2Options{Keys: 200, SnapshotCount: 50, Writers: 4}, dataDir, fixture.PortPair(t),
		func(url string) error { want = etcdtest.DumpV2(t, url); return nil })
	if err != nil {
		t.Fatal(err)
	}
	wroteAt := time.Now()
	if err := os.Remove(filepath.Join(dataDir, "version.txt")); err != nil {
		t.Fatal(err)
	}
	args := []string{"--target-version=3.0.17", "--target-storage=etcd2", "--exec=false", "--bundled-versions=" + seedBundle}

	// Killed in the 3.0.17 step, after its snapshot, before its etcd stopped:
	// version.txt says 2.3.8/etcd2, the data (a v3 backend now) says 3.0.
	cmd := migrateCmd(t, binDir, dataDir, []string{fault.Env + "=" + fault.StepBeforeStop + ":2"}, args...)
	out, err := cmd.CombinedOutput()
	etcdtest.WaitChildrenGone(t, dataDir, 5*time.Second)
	if code := cmd.ProcessState.ExitCode(); code != -1 {
		t.Fatalf("the run to kill: exit %d (%v), want SIGKILL at %s:2\n%s", code, err, fault.StepBeforeStop, out)
	}
	if got := readVersionTxt(t, dataDir); got != "2.3.8/etcd2\n" {
		t.Fatalf("after the kill: version.txt = %q, want 2.3.8/etcd2", got)
	}
	for _, w := range []string{"etcd2 data without version.txt: taken as written by the oldest bundled etcd 2.x",
		"kind=upgrade-etcd2 from=2.2.5/etcd2 version_txt=2.3.8/etcd2 etcd=2.3.8 cluster_version=2.3.0"} {
		if !strings.Contains(string(out), w) {
			t.Fatalf("the killed run's log lacks %q:\n%s", w, out)
		}
	}
	t.Logf("killed in the 3.0.17 step: %s", logLine(string(out), "kind=upgrade-etcd2"))

	r := runMigrate(t, binDir, dataDir, nil, args...)
	if r.code != 0 {
		t.Fatalf("rerun: exit %d\n%s", r.code, r.stderr)
	}
	step := `kind=upgrade-etcd2 from=2.3.8/etcd2 version_txt=3.0.17/etcd2 etcd=3.0.17 cluster_version=3.0.0`
	if !strings.Contains(r.stderr, `steps="[upgrade-etcd2 2.3.8/etcd2 -> 3.0.17/etcd2 (run etcd-3.0.17 with the v2 API)]"`) || !strings.Contains(r.stderr, step) {
		t.Fatalf("rerun: want the one step %q:\n%s", step, r.stderr)
	}
	if got := readVersionTxt(t, dataDir); got != "3.0.17/etcd2\n" {
		t.Fatalf("version.txt = %q, want 3.0.17/etcd2", got)
	}
	rerun := r.stderr
	t.Logf("rerun: %s", logLine(rerun, "kind=upgrade-etcd2"))

	s, err := fixture.StartOld(binDir, "3.0.17", dataDir, fixture.PortPair(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	got := etcdtest.DumpV2(t, s.URL)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if diffs := compareV2(want, got); len(diffs) > 0 {
		t.Fatalf("etcd 3.0.17 serves the v2 keyspace differently from 2.2.5:\n%s", strings.Join(diffs, "\n"))
	}
	ttls := 0
	for _, n := range want {
		if n.TTL > 0 {
			ttls++
		}
	}
	if len(want) < 200 || ttls < 30 {
		t.Fatalf("only %d nodes (%d with a TTL) compared", len(want), ttls)
	}
	t.Logf("etcd 3.0.17 serves the %d v2 nodes (%d with a TTL) 2.2.5 wrote: values, indexes and TTLs identical", len(want), ttls)

	// On to etcd3: the conversion at 3.0.17, then every minor to 3.7.3.
	r = runMigrate(t, binDir, dataDir, nil, "--target-version=3.7.3", "--exec=false", "--bundled-versions="+seedBundle)
	if r.code != 0 || !strings.Contains(r.stderr, "kind=v2-to-v3 from=3.0.17/etcd2 version_txt=3.0.17/etcd3") {
		t.Fatalf("3.0.17/etcd2 -> 3.7.3/etcd3: exit %d, want the conversion at 3.0.17:\n%s", r.code, r.stderr)
	}
	fixture.InheritDirExpiry(want) // a key in a TTL dir gets the dir's lease
	srv := etcdtest.Serve(t, binDir, "3.7.3", dataDir)
	keys, leased, _ := compareV2V3(t, want, srv.DumpAll(t), conversionTime(t, r.stderr, wroteAt))
	srv.Stop()
	if keys < 200 || leased < 30 {
		t.Fatalf("only %d keys (%d leased) compared at 3.7.3", keys, leased)
	}
	// The step proved the same keyspace offline (keys counted after it).
	if w := fmt.Sprintf(" keys=%d keys_expired=0 ", keys); !strings.Contains(logLine(rerun, "kind=upgrade-etcd2"), w) {
		t.Fatalf("the 3.0.17 step's line lacks %q: %s", w, logLine(rerun, "kind=upgrade-etcd2"))
	}
	t.Logf("3.0.17/etcd2 -> 3.7.3/etcd3: %d keys, %d leased, identical", keys, leased)
}
