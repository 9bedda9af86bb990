package e2e

import (
	"strings"
	"testing"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// TestTargetAnyPatchOfABundledMinor: a Kubernetes TARGET_VERSION such as 3.5.17,
// not bundled, runs the bundled 3.5.35 ("within patch releases it is possible to
// upgrade and downgrade between arbitrary versions"): the 3.4.13 fixture walks to
// 3.5.35 with every key, version.txt records what ran, the substitution is logged
// once, and a rerun with the same TARGET_VERSION is a no-op.
func TestTargetAnyPatchOfABundledMinor(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	pristine := etcdtest.ExtractFixture(t, fixture34)
	want := baseline34(t, binDir, pristine)
	dataDir := etcdtest.CopyDir(t, pristine)
	env := []string{"TARGET_VERSION=3.5.17", "TARGET_STORAGE=etcd3"}
	r := runMigrate(t, binDir, dataDir, env, "--exec=false")
	if r.code != 0 {
		t.Fatalf("TARGET_VERSION=3.5.17: exit %d\n%s", r.code, r.stderr)
	}
	for _, w := range []string{`requested=3.5.17 runs=3.5.35`, "kind=upgrade-minor from=3.4.13/etcd3 version_txt=3.5.35/etcd3 etcd=3.5.35",
		`msg="migration done" version_txt=3.5.35/etcd3 steps=1`} {
		if !strings.Contains(r.stderr, w) {
			t.Fatalf("log lacks %q:\n%s", w, r.stderr)
		}
	}
	if n := strings.Count(r.stderr, "target version is not bundled"); n != 1 {
		t.Fatalf("the substitution is logged %d times, want once:\n%s", n, r.stderr)
	}
	if got := readVersionTxt(t, dataDir); got != "3.5.35/etcd3\n" {
		t.Fatalf("version.txt = %q, want 3.5.35/etcd3", got)
	}
	sum := etcdtest.Checksum(t, dataDir)
	again := runMigrate(t, binDir, dataDir, env, "--exec=false")
	if again.code != 0 || !strings.Contains(again.stderr, `msg="migration done" version_txt=3.5.35/etcd3 steps=0`) {
		t.Fatalf("rerun with TARGET_VERSION=3.5.17: exit %d, want a no-op:\n%s", again.code, again.stderr)
	}
	if etcdtest.Checksum(t, dataDir) != sum {
		t.Fatal("the no-op rerun changed the data dir")
	}
	assertServedKeyspace(t, binDir, "3.5.35", dataDir, want, "TARGET_VERSION=3.5.17")
	// A minor that is not bundled stays an input error.
	if r := runMigrate(t, binDir, dataDir, []string{"TARGET_VERSION=3.8.1"}, "--exec=false"); r.code != 2 || !strings.Contains(errorLine(t, r), "target version 3.8.1 is not bundled, nor any etcd 3.8.x") {
		t.Fatalf("TARGET_VERSION=3.8.1: exit %d, %q", r.code, errorLine(t, r))
	}
}
