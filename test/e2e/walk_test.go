package e2e

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// baseline34 serves a pristine copy of the 3.4.13 fixture with etcd 3.4.13 and
// dumps it: what every migrated copy must equal.
func baseline34(t *testing.T, binDir, pristine string) etcdtest.Dump {
	t.Helper()
	s := etcdtest.Serve(t, binDir, "3.4.13", etcdtest.CopyDir(t, pristine))
	d := s.DumpAll(t)
	s.Stop()
	if len(d.Keys) < 2000 {
		t.Fatalf("fixture has %d keys, want >= 2000", len(d.Keys))
	}
	leased := 0
	for _, kv := range d.Keys {
		if kv.Lease != 0 {
			leased++
		}
	}
	if leased < 50 || len(d.Leases) != 10 {
		t.Fatalf("fixture has %d leased keys in %d leases, want >= 50 in 10", leased, len(d.Leases))
	}
	return d
}

// assertServedKeyspace serves dataDir with etcd-<version> and fails unless its
// keyspace equals want; what names the situation in the failure.
func assertServedKeyspace(t *testing.T, binDir, version, dataDir string, want etcdtest.Dump, what string) {
	t.Helper()
	s := etcdtest.Serve(t, binDir, version, dataDir)
	got := s.DumpAll(t)
	s.Stop()
	if diffs := etcdtest.Compare(want, got, 10); len(diffs) > 0 {
		t.Fatalf("%s: the keyspace served by %s differs from the original:\n%s", what, version, strings.Join(diffs, "\n"))
	}
}

var stopMs = regexp.MustCompile(`\bstop_ms=(\d+)`)

// TestWalk34To37 walks the 3.4.13 fixture to 3.7.3 through every minor, ten times
// on fresh copies: both traps (3.7 replaying pre-3.5 WAL entries; stopping before
// the cluster version moved) would fail some of these walks.
func TestWalk34To37(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	pristine := etcdtest.ExtractFixture(t, fixture34)
	want := baseline34(t, binDir, pristine)

	walks := 10
	if testing.Short() {
		walks = 2
	}
	var durations []time.Duration
	for i := 0; i < walks; i++ {
		dataDir := etcdtest.CopyDir(t, pristine)
		start := time.Now()
		r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.7.3", "--exec=false")
		durations = append(durations, time.Since(start))
		if r.code != 0 {
			t.Fatalf("walk %d: exit %d\n%s", i, r.code, r.stderr)
		}
		for _, v := range []string{"3.5.35", "3.6.16", "3.7.3"} {
			if !strings.Contains(r.stderr, "etcd="+v) {
				t.Fatalf("walk %d: no step ran etcd %s:\n%s", i, v, r.stderr)
			}
		}
		if got := readVersionTxt(t, dataDir); got != "3.7.3/etcd3\n" {
			t.Fatalf("walk %d: version.txt = %q", i, got)
		}
		// A stop takes tens of ms; etcd's shutdown waits its 5.2 s request timeout
		// for a client connection that never went idle (one in four stops before
		// etcdproc closed its parked connections first).
		for _, m := range stopMs.FindAllStringSubmatch(r.stderr, -1) {
			if ms, _ := strconv.Atoi(m[1]); ms > 3000 {
				t.Errorf("walk %d: a step's etcd took %d ms to stop gracefully", i, ms)
			}
		}
		assertServedKeyspace(t, binDir, "3.7.3", dataDir, want, fmt.Sprintf("walk %d", i))
	}
	t.Logf("%d walks 3.4.13 -> 3.7.3 of %d keys: %v", walks, len(want.Keys), durations)
}

// TestRerunIsNoop: a second run with the same target has nothing to do and leaves
// the data dir byte-for-byte unchanged.
func TestRerunIsNoop(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	dataDir := etcdtest.ExtractFixture(t, fixture34)
	if r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.7.3", "--exec=false"); r.code != 0 {
		t.Fatalf("walk: exit %d\n%s", r.code, r.stderr)
	}
	sum := etcdtest.Checksum(t, dataDir)
	r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.7.3", "--exec=false")
	if r.code != 0 || !strings.Contains(r.stderr, "steps=0") {
		t.Fatalf("rerun: exit %d, want a 0-step run:\n%s", r.code, r.stderr)
	}
	if etcdtest.Checksum(t, dataDir) != sum {
		t.Fatal("a no-op rerun changed the data dir")
	}
}

// TestPatchOnlyWritesVersion: a version.txt naming another patch of the target minor
// needs no etcd run, only the new version recorded.
func TestPatchOnlyWritesVersion(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	dataDir := etcdtest.ExtractFixture(t, fixture34)
	if r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.5.35", "--exec=false"); r.code != 0 {
		t.Fatalf("walk: exit %d\n%s", r.code, r.stderr)
	}
	if err := writeFile(dataDir+"/version.txt", "3.5.2/etcd3\n"); err != nil {
		t.Fatal(err)
	}
	r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.5.35", "--exec=false")
	if r.code != 0 || !strings.Contains(r.stderr, "kind=write-version") || strings.Contains(r.stderr, "kind=upgrade-minor") {
		t.Fatalf("exit %d, want one write-version step:\n%s", r.code, r.stderr)
	}
	if got := readVersionTxt(t, dataDir); got != "3.5.35/etcd3\n" {
		t.Fatalf("version.txt = %q", got)
	}
}

// TestEmptyDataDir: a missing data dir is created and gets the target recorded.
func TestEmptyDataDir(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	dataDir := t.TempDir() + "/new/data"
	r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.6.16", "--exec=false")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if got := readVersionTxt(t, dataDir); got != "3.6.16/etcd3\n" {
		t.Fatalf("version.txt = %q", got)
	}
}

// TestPlanAndStatus: the read-only commands print the plan and the detected state.
func TestPlanAndStatus(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	dataDir := etcdtest.ExtractFixture(t, fixture34)
	sum := etcdtest.Checksum(t, dataDir)
	r := runMigrate(t, binDir, dataDir, nil, "plan", "--target-version=3.7.3")
	want := "current: 3.4.13/etcd3\ntarget:  3.7.3/etcd3\n" +
		"step 1: upgrade-minor 3.4.13/etcd3 -> 3.5.35/etcd3 (run etcd-3.5.35)\n" +
		"step 2: upgrade-minor 3.5.35/etcd3 -> 3.6.16/etcd3 (run etcd-3.6.16)\n" +
		"step 3: upgrade-minor 3.6.16/etcd3 -> 3.7.3/etcd3 (run etcd-3.7.3)\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("plan: exit %d, stdout:\n%s\nwant:\n%s\nstderr:\n%s", r.code, r.stdout, want, r.stderr)
	}
	r = runMigrate(t, binDir, dataDir, nil, "status")
	wantStatus := "data dir:    " + dataDir + "\nversion.txt: 3.4.13/etcd3\ndata:        etcd3 data (cluster version 3.4.0)\nauth:        disabled (0 users, 0 roles)\nmembers:     1 (etcd-member 8e9e05c52164694d http://localhost:2380)\n"
	if r.code != 0 || r.stdout != wantStatus {
		t.Fatalf("status: exit %d, stdout:\n%q\nwant:\n%q", r.code, r.stdout, wantStatus)
	}
	if etcdtest.Checksum(t, dataDir) != sum {
		t.Fatal("plan/status changed the data dir")
	}
}
