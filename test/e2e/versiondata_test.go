package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/etcd/server/v3/etcdserver/api/membership"
	"go.etcd.io/etcd/server/v3/storage/backend"
	"go.etcd.io/etcd/server/v3/storage/schema"
	"go.uber.org/zap"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/pkg/fault"
)

// TestVersionTxtContradictsData: a version.txt whose minor the data contradicts
// (beyond one step cut short) is refused by `plan` and by a real run, exit 2 within
// seconds, naming both, with the data dir byte for byte unchanged. Before, 3.7.3 on
// 3.4 data planned "nothing to do" and exec'd etcd 3.7.3 on 3.4 data.
func TestVersionTxtContradictsData(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	d34 := etcdtest.ExtractFixture(t, fixture34)
	d2 := etcdtest.ExtractFixture(t, "etcd2-3.4.13.tar.gz")
	d37 := etcdtest.CopyDir(t, d34)
	if r := runMigrate(t, binDir, d37, nil, "--target-version=3.7.3", "--exec=false"); r.code != 0 {
		t.Fatalf("walk to 3.7.3: exit %d\n%s", r.code, r.stderr)
	}
	tests := []struct {
		name, data, versionTxt, want string
	}{
		{"3.7.3 on 3.4 data", d34, "3.7.3/etcd3",
			"version.txt says 3.7.3/etcd3 but the data is etcd3 data (cluster version 3.4.0): the data records an older version than version.txt, beyond the one minor a rollback step cut short leaves; fix version.txt to name the version that last wrote the data (an etcd 3.4 release)"},
		{"3.6.16 on 3.4 data", d34, "3.6.16/etcd3",
			"version.txt says 3.6.16/etcd3 but the data is etcd3 data (cluster version 3.4.0): the data records an older version than version.txt"},
		{"3.5.35 on 3.7 data", d37, "3.5.35/etcd3",
			"version.txt says 3.5.35/etcd3 but the data is etcd3 data (storage version 3.7.0, cluster version 3.7.0): the data was written by a newer etcd than version.txt says; fix version.txt to name the version that last wrote the data (an etcd 3.7 release)"},
		{"etcd2 on v3 data with keys", d34, "3.4.13/etcd2",
			"version.txt says 3.4.13/etcd2 but the data is etcd3 data (cluster version 3.4.0): its v3 backend holds key revisions, so the data is etcd3"},
		{"etcd2 on 3.7 data", d37, "3.7.3/etcd2", "version.txt says 3.7.3/etcd2 but the data is etcd3 data (storage version 3.7.0, cluster version 3.7.0): its v3 backend holds"},
		{"etcd3 on v2-only data", d2, "3.4.13/etcd3",
			"version.txt says 3.4.13/etcd3 but the data is etcd2: its v2 store holds 389 keys and directories and its v3 backend none; fix version.txt to 3.4.13/etcd2"},
		{"etcd3 3.5 on v2-only data", d2, "3.5.35/etcd3", "version.txt says 3.5.35/etcd3 but the data is etcd2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := etcdtest.CopyDir(t, tc.data)
			if err := writeFile(filepath.Join(dataDir, "version.txt"), tc.versionTxt+"\n"); err != nil {
				t.Fatal(err)
			}
			sum := etcdtest.Checksum(t, dataDir)
			for _, args := range [][]string{
				{"plan", "--target-version=3.7.3"},
				{"--target-version=3.7.3", "--exec=false"},
				{"--target-version=3.4.13", "--exec=false"},
			} {
				start := time.Now()
				r := runMigrate(t, binDir, dataDir, nil, args...)
				took := time.Since(start)
				if r.code != 2 {
					t.Fatalf("%v: exit %d, want 2\n%s%s", args, r.code, r.stdout, r.stderr)
				}
				if line := errorLine(t, r); !strings.Contains(line, tc.want) {
					t.Fatalf("%v: error line\n%s\nwant it to contain\n%s", args, line, tc.want)
				}
				if took > 5*time.Second {
					t.Errorf("%v: refused after %v", args, took)
				}
				if etcdtest.Checksum(t, dataDir) != sum {
					t.Fatalf("%v: the refused run changed the data dir", args)
				}
				t.Logf("%v: exit 2 in %v", args, took.Round(time.Millisecond))
			}
		})
	}
}

// TestCutShortStepRollsBack: a 3.5 step on 3.4 data that raised the cluster version
// to 3.5 and was cut short before it recorded itself (migrate killed after the
// step's etcd stopped) leaves version.txt at 3.4.13 and the data at 3.5, which
// etcd 3.4.13 refuses. TARGET_VERSION=3.4.13 (the operator's first move back) is
// then a rollback from the data's minor, and etcd 3.4.13 serves every key.
func TestCutShortStepRollsBack(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	pristine := etcdtest.ExtractFixture(t, fixture34)
	want := baseline34(t, binDir, pristine)
	dataDir := etcdtest.CopyDir(t, pristine)
	r := runMigrate(t, binDir, dataDir, []string{fault.Env + "=" + fault.StepAfterStop}, "--target-version=3.5.35", "--exec=false")
	if r.code == 0 {
		t.Fatalf("the fault did not fire\n%s", r.stderr)
	}
	if got := readVersionTxt(t, dataDir); got != "3.4.13/etcd3\n" {
		t.Fatalf("after the cut-short step version.txt = %q", got)
	}
	// What today's "nothing to do" would exec: etcd 3.4.13 refuses the data.
	if etcdtest.Serves(t, binDir, "3.4.13", dataDir) {
		t.Fatalf("etcd 3.4.13 serves the cut-short data: the step did not move it to 3.5")
	}
	st := runMigrate(t, binDir, dataDir, nil, "status")
	if st.code != 0 || !strings.Contains(st.stdout, "version.txt: 3.4.13/etcd3\ndata:        etcd3 data (cluster version 3.5.0)\ncurrent:     3.5.x/etcd3 (version.txt says 3.4.13/etcd3, but the data is etcd3 data (cluster version 3.5.0): a step was cut short") {
		t.Fatalf("status: exit %d\n%s%s", st.code, st.stdout, st.stderr)
	}
	p := runMigrate(t, binDir, dataDir, nil, "plan", "--target-version=3.4.13")
	wantPlan := "current: 3.5.x/etcd3 (version.txt says 3.4.13/etcd3, but the data is etcd3 data (cluster version 3.5.0): a step was cut short after it changed what the data records)\n" +
		"target:  3.4.13/etcd3\n" +
		"step 1: rollback-minor 3.5.x/etcd3 -> 3.4.13/etcd3 (snapshot with etcd-3.5.35, restore with etcdctl-3.4.13, then run etcd-3.4.13)\n"
	if p.code != 0 || p.stdout != wantPlan {
		t.Fatalf("plan: exit %d\n%s\nwant\n%s%s", p.code, p.stdout, wantPlan, p.stderr)
	}
	r = runMigrate(t, binDir, dataDir, nil, "--target-version=3.4.13", "--exec=false")
	if r.code != 0 {
		t.Fatalf("rollback: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "a step was cut short after it changed what the data records; planning from the data's minor") {
		t.Errorf("no log line for the cut-short step:\n%s", r.stderr)
	}
	if got := readVersionTxt(t, dataDir); got != "3.4.13/etcd3\n" {
		t.Fatalf("version.txt = %q", got)
	}
	assertServedKeyspace(t, binDir, "3.4.13", dataDir, want, "rollback after a cut-short 3.5 step")
}

// TestPatchFloor: data recorded at an old patch of 3.5 (version.txt 3.5.0/etcd3 on
// data a real 3.5.35 wrote; 3.5.35 is the only bundled 3.5) runs the newest bundled
// 3.5 patch before the 3.6 step; a patch-only change still runs nothing.
func TestPatchFloor(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	pristine := etcdtest.ExtractFixture(t, fixture34)
	want := baseline34(t, binDir, pristine)
	dataDir := etcdtest.CopyDir(t, pristine)
	if r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.5.35", "--exec=false"); r.code != 0 {
		t.Fatalf("walk to 3.5.35: exit %d\n%s", r.code, r.stderr)
	}
	if err := writeFile(filepath.Join(dataDir, "version.txt"), "3.5.0/etcd3\n"); err != nil {
		t.Fatal(err)
	}
	p := runMigrate(t, binDir, dataDir, nil, "plan", "--target-version=3.5.35")
	if want := "current: 3.5.0/etcd3\ntarget:  3.5.35/etcd3\nstep 1: write-version 3.5.0/etcd3 -> 3.5.35/etcd3\n"; p.code != 0 || p.stdout != want {
		t.Fatalf("plan to 3.5.35: exit %d\n%s\nwant\n%s%s", p.code, p.stdout, want, p.stderr)
	}
	p = runMigrate(t, binDir, dataDir, nil, "plan", "--target-version=3.6.16")
	wantPlan := "current: 3.5.0/etcd3\ntarget:  3.6.16/etcd3\n" +
		"step 1: upgrade-patch 3.5.0/etcd3 -> 3.5.35/etcd3 (run etcd-3.5.35)\n" +
		"step 2: upgrade-minor 3.5.35/etcd3 -> 3.6.16/etcd3 (run etcd-3.6.16)\n"
	if p.code != 0 || p.stdout != wantPlan {
		t.Fatalf("plan to 3.6.16: exit %d\n%s\nwant\n%s%s", p.code, p.stdout, wantPlan, p.stderr)
	}
	r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.6.16", "--exec=false")
	if r.code != 0 {
		t.Fatalf("walk to 3.6.16: exit %d\n%s", r.code, r.stderr)
	}
	var done []string
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.Contains(l, `msg="step done"`) {
			done = append(done, l)
		}
	}
	if len(done) != 2 || !strings.Contains(done[0], "kind=upgrade-patch from=3.5.0/etcd3 version_txt=3.5.35/etcd3") ||
		!strings.Contains(done[0], "etcd=3.5.35") || !strings.Contains(done[0], "snapshot_index=") ||
		!strings.Contains(done[1], "kind=upgrade-minor from=3.5.35/etcd3 version_txt=3.6.16/etcd3") {
		t.Fatalf("step lines:\n%s", strings.Join(done, "\n"))
	}
	if got := readVersionTxt(t, dataDir); got != "3.6.16/etcd3\n" {
		t.Fatalf("version.txt = %q", got)
	}
	assertServedKeyspace(t, binDir, "3.6.16", dataDir, want, "walk from 3.5.0 through the 3.5.35 floor")
}

// TestPatch3425Floor: with the image's default bundle, which carries 3.4.13 (a
// target) and 3.4.25 (3.4's newest patch the module proxy serves), 3.4.13 data runs
// the real etcd 3.4.25 before the 3.5 step, and a rollback to 3.4.13 ends there.
func TestPatch3425Floor(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	bundle := "--bundled-versions=3.4.13,3.4.25,3.5.35,3.6.16,3.7.3"
	pristine := etcdtest.ExtractFixture(t, fixture34)
	want := baseline34(t, binDir, pristine)
	dataDir := etcdtest.CopyDir(t, pristine)
	r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.5.35", "--exec=false", bundle)
	if r.code != 0 {
		t.Fatalf("walk to 3.5.35: exit %d\n%s", r.code, r.stderr)
	}
	for _, w := range []string{"kind=upgrade-patch from=3.4.13/etcd3 version_txt=3.4.25/etcd3 etcd=3.4.25 cluster_version=3.4.0",
		"kind=upgrade-minor from=3.4.25/etcd3 version_txt=3.5.35/etcd3 etcd=3.5.35 cluster_version=3.5.0"} {
		if !strings.Contains(r.stderr, w) {
			t.Fatalf("walk log lacks %q:\n%s", w, r.stderr)
		}
	}
	assertServedKeyspace(t, binDir, "3.5.35", dataDir, want, "walk from 3.4.13 through 3.4.25")
	r = runMigrate(t, binDir, dataDir, nil, "--target-version=3.4.13", "--exec=false", bundle)
	if r.code != 0 || !strings.Contains(r.stderr, "kind=rollback-minor from=3.5.35/etcd3 version_txt=3.4.13/etcd3") {
		t.Fatalf("rollback to 3.4.13: exit %d\n%s", r.code, r.stderr)
	}
	if got := readVersionTxt(t, dataDir); got != "3.4.13/etcd3\n" {
		t.Fatalf("version.txt = %q", got)
	}
	assertServedKeyspace(t, binDir, "3.4.13", dataDir, want, "rollback to 3.4.13")
}

// TestDetectedPatchUnknown: data without version.txt tells its minor only; plan and
// status print it as 3.4.x (not an invented 3.4.0), and the walk runs the newest
// bundled 3.4 first.
func TestDetectedPatchUnknown(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	dataDir := etcdtest.ExtractFixture(t, fixture34)
	if err := os.Remove(filepath.Join(dataDir, "version.txt")); err != nil {
		t.Fatal(err)
	}
	p := runMigrate(t, binDir, dataDir, nil, "plan", "--target-version=3.5.35")
	wantPlan := "current: 3.4.x/etcd3 (no version.txt; detected from the data, whose backend records the minor only)\n" +
		"target:  3.5.35/etcd3\n" +
		"step 1: upgrade-patch 3.4.x/etcd3 -> 3.4.13/etcd3 (run etcd-3.4.13)\n" +
		"step 2: upgrade-minor 3.4.13/etcd3 -> 3.5.35/etcd3 (run etcd-3.5.35)\n"
	if p.code != 0 || p.stdout != wantPlan {
		t.Fatalf("plan: exit %d\n%s\nwant\n%s%s", p.code, p.stdout, wantPlan, p.stderr)
	}
	p = runMigrate(t, binDir, dataDir, nil, "plan", "--target-version=3.4.13")
	if want := "step 1: upgrade-patch 3.4.x/etcd3 -> 3.4.13/etcd3 (run etcd-3.4.13)\n"; p.code != 0 || !strings.HasSuffix(p.stdout, want) {
		t.Fatalf("plan to 3.4.13: exit %d\n%s\nwant suffix\n%s%s", p.code, p.stdout, want, p.stderr)
	}
}

// TestPatchFloorRemovesZombieMember tests why the patch floor exists: a 3.5 data
// dir whose v3 backend holds a member its v2 store does not (the inconsistency of
// etcd's "zombie members" advisory; 3.5 trusts the v2 store, 3.6 the backend),
// written offline with etcd's own membership/schema packages. Recorded as 3.5.0,
// the walk to 3.6.16 runs 3.5.35 first, whose membership repair (3.5.26+) drops the
// extra member: 3.6.16 then serves alone. Recorded as 3.5.35 (no floor step), the
// same data gives 3.6.16 a member list with the zombie, whose version it cannot
// read, so the cluster version never reaches 3.6 and the step fails.
func TestPatchFloorRemovesZombieMember(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	base := etcdtest.ExtractFixture(t, fixture34)
	if r := runMigrate(t, binDir, base, nil, "--target-version=3.5.35", "--exec=false"); r.code != 0 {
		t.Fatalf("walk to 3.5.35: exit %d\n%s", r.code, r.stderr)
	}
	const zombie = types.ID(0xdeadbeef)
	addBackendOnlyMember(t, base, zombie)
	if ids := backendMembers(t, base); len(ids) != 2 {
		t.Fatalf("backend members before the walk: %v", ids)
	}

	floor := etcdtest.CopyDir(t, base)
	if err := writeFile(filepath.Join(floor, "version.txt"), "3.5.0/etcd3\n"); err != nil {
		t.Fatal(err)
	}
	r := runMigrate(t, binDir, floor, nil, "--target-version=3.6.16", "--exec=false")
	if r.code != 0 || !strings.Contains(r.stderr, "kind=upgrade-patch from=3.5.0/etcd3 version_txt=3.5.35/etcd3") {
		t.Fatalf("walk with the floor: exit %d\n%s", r.code, r.stderr)
	}
	if ids := backendMembers(t, floor); len(ids) != 1 || ids[0] == zombie {
		t.Fatalf("backend members after the walk: %v, want only the real member", ids)
	}
	s := etcdtest.Serve(t, binDir, "3.6.16", floor)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ml, err := s.Client.MemberList(ctx)
	if err != nil || len(ml.Members) != 1 {
		t.Fatalf("3.6.16 member list: %v %v", ml, err)
	}
	if _, err := s.Client.Put(ctx, "after-the-walk", "x"); err != nil {
		t.Fatalf("3.6.16 does not serve writes: %v", err)
	}
	s.Stop()

	noFloor := etcdtest.CopyDir(t, base)
	r = runMigrate(t, binDir, noFloor, nil, "--target-version=3.6.16", "--exec=false", "--step-timeout=15s")
	if r.code != 1 || !strings.Contains(errorLine(t, r), "upgrade-minor 3.5.35/etcd3 -> 3.6.16/etcd3") {
		t.Fatalf("without the floor: exit %d, want 1 with the 3.6 step failing\n%s", r.code, r.stderr)
	}
	if ids := backendMembers(t, noFloor); len(ids) != 2 {
		t.Fatalf("without the floor the backend members are %v, want the zombie still there", ids)
	}
	t.Logf("without the floor: %s", errorLine(t, r))
}

// addBackendOnlyMember writes a member into the v3 backend's members bucket only,
// with etcd's schema package, as an etcd 3.1-3.4 bug could leave it.
func addBackendOnlyMember(t *testing.T, dataDir string, id types.ID) {
	t.Helper()
	be := backend.NewDefaultBackend(zap.NewNop(), filepath.Join(dataDir, "member", "snap", "db"))
	defer be.Close()
	schema.NewMembershipBackend(zap.NewNop(), be).MustSaveMemberToBackend(&membership.Member{
		ID:             id,
		RaftAttributes: membership.RaftAttributes{PeerURLs: []string{"http://127.0.0.1:1"}},
		Attributes:     membership.Attributes{Name: "zombie"},
	})
	be.ForceCommit()
}

// backendMembers lists the member IDs of the v3 backend's members bucket.
func backendMembers(t *testing.T, dataDir string) []types.ID {
	t.Helper()
	be := backend.NewDefaultBackend(zap.NewNop(), filepath.Join(dataDir, "member", "snap", "db"))
	defer be.Close()
	ms, _ := schema.NewMembershipBackend(zap.NewNop(), be).MustReadMembersFromBackend()
	var ids []types.ID
	for id := range ms {
		ids = append(ids, id)
	}
	return ids
}
