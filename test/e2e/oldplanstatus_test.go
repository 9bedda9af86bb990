//go:build oldetcd

package e2e

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/internal/fixture"
)

// TestOldPlanStatus: plan and status on the data every release before the bundle
// writes, with the whole bundle: etcd3 data of 3.0-3.3 with and without
// version.txt, etcd2 data of 2.2.5 without version.txt (taken as the oldest bundled
// 2.x: it made plan panic once) and of 2.3.8 with it.
func TestOldPlanStatus(t *testing.T) {
	binDir := oldBinDir(t, "2.2.5")
	var cases []planStatusCase
	gen := map[string]string{} // release -> a pristine data dir, generated once
	parent := t
	etcd3 := func(t *testing.T, v string) string {
		if d, ok := gen[v]; ok {
			return d
		}
		d := filepath.Join(parent.TempDir(), "data")
		if _, err := fixture.GenerateEtcd3Old(binDir, v, d, fixture.PortPair(t), false, nil); err != nil {
			t.Fatal(err)
		}
		gen[v] = d
		return d
	}
	for _, v := range oldEtcd3Versions {
		x := minor(v) + ".x/etcd3"
		noTxt := x + " (no version.txt; detected from the data, whose backend records the minor only)"
		cases = append(cases,
			planStatusCase{name: "etcd3 " + v, bundled: seedBundle,
				dataDir: func(t *testing.T) string { return etcdtest.CopyDir(t, etcd3(t, v)) },
				plan:    "current: " + v + "/etcd3\ntarget:  3.7.3/etcd3\n" + seedWalk(v, 0),
				status:  []string{"version.txt: " + v + "/etcd3", "data:        etcd3 data (cluster version " + minor(v) + ".0)"},
			},
			planStatusCase{name: "etcd3 " + v + " without version.txt", bundled: seedBundle,
				dataDir: func(t *testing.T) string { return writeVersionTxt(t, etcdtest.CopyDir(t, etcd3(t, v)), "") },
				plan: "current: " + noTxt + "\ntarget:  3.7.3/etcd3\n" +
					"step 1: upgrade-patch " + x + " -> " + v + "/etcd3 (run etcd-" + v + ")\n" + seedWalk(v, 1),
				status: []string{"version.txt: missing", "current:     " + noTxt}},
		)
	}
	etcd2 := func(t *testing.T, v string) string {
		d := filepath.Join(t.TempDir(), "data")
		opts := fixture.Etcd2Options{Keys: 200, SnapshotCount: 50, Writers: 4} // as TestOldEtcd2Mode
		if err := fixture.GenerateEtcd2Old(binDir, v, opts, d, fixture.PortPair(t), nil); err != nil {
			t.Fatal(err)
		}
		return d
	}
	cases = append(cases,
		planStatusCase{name: "etcd2 2.2.5 without version.txt", bundled: seedBundle,
			dataDir: func(t *testing.T) string { return writeVersionTxt(t, etcd2(t, "2.2.5"), "") },
			plan: "current: 2.2.5/etcd2 (no version.txt; v2-only data does not record the etcd that wrote it: taken as the oldest bundled etcd 2.x)\n" +
				"target:  3.7.3/etcd3\nstep 1: v2-to-v3 2.2.5/etcd2 -> 3.0.17/etcd3 (convert offline, then run etcd-3.0.17)\n" + seedWalk("3.0.17", 1),
			status: []string{"version.txt: missing", "data:        etcd2 data (WAL and v2 snapshots, no v3 backend)",
				"current:     2.2.5/etcd2 (no version.txt; v2-only data does not record the etcd that wrote it: taken as the oldest bundled etcd 2.x)"},
			log: `level=WARN msg="etcd2 data without version.txt: taken as written by the oldest bundled etcd 2.x"`},
		planStatusCase{name: "etcd2 2.3.8", bundled: seedBundle,
			dataDir: func(t *testing.T) string { return etcd2(t, "2.3.8") },
			plan:    "current: 2.3.8/etcd2\ntarget:  3.7.3/etcd3\nstep 1: v2-to-v3 2.3.8/etcd2 -> 3.0.17/etcd3 (convert offline, then run etcd-3.0.17)\n" + seedWalk("3.0.17", 1),
			status:  []string{"version.txt: 2.3.8/etcd2", "data:        etcd2 data (WAL and v2 snapshots, no v3 backend)"}},
	)
	// etcd2 data of the 3.x releases before the bundle, with their version.txt:
	// converted at their own minor.
	for _, v := range oldEtcd3Versions {
		cases = append(cases, planStatusCase{name: "etcd2 " + v, bundled: seedBundle,
			dataDir: func(t *testing.T) string { return etcd2(t, v) },
			plan: "current: " + v + "/etcd2\ntarget:  3.7.3/etcd3\n" +
				"step 1: v2-to-v3 " + v + "/etcd2 -> " + v + "/etcd3 (convert offline, then run etcd-" + v + ")\n" + seedWalk(v, 1),
			status: []string{"version.txt: " + v + "/etcd2"}})
	}
	checkPlanStatus(t, binDir, cases)
}

// seedWalk is the upgrade-minor steps of the whole bundle from etcd3 data at v to
// 3.7.3, numbered from n+1.
func seedWalk(v string, n int) string {
	chain := []string{"3.0.17", "3.1.20", "3.2.32", "3.3.27", "3.4.25", "3.5.35", "3.6.16", "3.7.3"}
	out := ""
	for i := 0; i+1 < len(chain); i++ {
		if minor(chain[i]) < minor(v) {
			continue
		}
		n++
		out += fmt.Sprintf("step %d: upgrade-minor %s/etcd3 -> %s/etcd3 (run etcd-%s)\n", n, chain[i], chain[i+1], chain[i+1])
	}
	return out
}
