//go:build oldetcd

package e2e

// The Kubernetes upgrade document's two procedures, exactly as it writes them:
//
//	upgrade:   TARGET_STORAGE=etcd3  TARGET_VERSION=3.0.17  ETCD_IMAGE=3.0.17  STORAGE_MEDIA_TYPE=application/json
//	rollback:  TARGET_STORAGE=etcd2  TARGET_VERSION=2.2.1   ETCD_IMAGE=3.0.17  STORAGE_MEDIA_TYPE=application/json
//
// on data written by the real etcd 2.2.5 (the module proxy serves no 2.2.1) with no
// version.txt, each result served by the real etcd of that version.

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/internal/fixture"
	"github.com/etcd-migrate/etcd-migrate/pkg/fault"
	"github.com/etcd-migrate/etcd-migrate/pkg/rollback"
)

var (
	documentUpgrade  = []string{"TARGET_STORAGE=etcd3", "TARGET_VERSION=3.0.17", "ETCD_IMAGE=3.0.17", "STORAGE_MEDIA_TYPE=application/json"}
	documentRollback = []string{"TARGET_STORAGE=etcd2", "TARGET_VERSION=2.2.1", "ETCD_IMAGE=3.0.17", "STORAGE_MEDIA_TYPE=application/json"}
)

// TestOldDocumentCycle: 2.2.5 data without version.txt -> the document's upgrade ->
// served by 3.0.17 (every v2 key a v3 key, revisions = indexes, TTL keys leased for
// their remaining TTL) -> the document's rollback -> served by 2.2.5 (every key,
// createdIndex/modifiedIndex = the revisions, TTLs = the leases') -> the upgrade
// again -> on to 3.7.3 (the same keyspace). Each migration is first killed at a
// point inside its step (the kill must land: a run that finishes fails the test),
// then rerun, and then run once more as a no-op.
func TestOldDocumentCycle(t *testing.T) {
	binDir := oldBinDir(t, "2.2.5")
	oldBinDir(t, "3.0.17")
	dataDir := filepath.Join(t.TempDir(), "data")
	// The dir a backup takes inside a data dir that is a mount of its own: every
	// release of the cycle (2.2.5, 3.0.17 … 3.7.3) starts beside it.
	inside := filepath.Join(dataDir, ".etcd-migrate-backup", "data.bak")
	if err := os.MkdirAll(inside, 0o700); err != nil {
		t.Fatal(err)
	}
	v2 := documentData(t, binDir, "2.2.5", dataDir)

	// The document's upgrade.
	r := documentRun(t, binDir, dataDir, documentUpgrade, fault.ConvertBeforeSwap, "3.0.17/etcd3")
	for _, w := range []string{"taken as written by the oldest bundled etcd 2.x", "kind=v2-to-v3 from=2.2.5/etcd2 version_txt=3.0.17/etcd3 etcd=3.0.17"} {
		if !strings.Contains(r.stderr, w) {
			t.Fatalf("upgrade: log lacks %q:\n%s", w, r.stderr)
		}
	}
	v3 := serve30(t, binDir, dataDir)
	keys, leased, _ := compareV2V3(t, v2, v3, conversionTime(t, r.stderr, time.Now()))
	if keys < 150 || leased < 20 {
		t.Fatalf("upgrade: only %d keys (%d leased) compared", keys, leased)
	}
	t.Logf("the document's upgrade: etcd 3.0.17 serves %d keys (%d leased) as 2.2.5 wrote them", keys, leased)

	// The document's rollback: TARGET_VERSION=2.2.1 runs the bundled 2.2.5.
	r = documentRun(t, binDir, dataDir, documentRollback, fault.RollbackBeforeSwap, "2.2.5/etcd2")
	for _, w := range []string{"requested=2.2.1 runs=2.2.5", "kind=rollback-to-etcd2 from=3.0.17/etcd3 version_txt=2.2.5/etcd2 etcd=2.2.5 cluster_version=2.2.0"} {
		if !strings.Contains(r.stderr, w) {
			t.Fatalf("rollback: log lacks %q:\n%s", w, r.stderr)
		}
	}
	back := serve22(t, binDir, dataDir)
	n := compareV3V2(t, v3, back, etcdtest.LogTime(t, r.stderr, `msg="v3 keyspace converted to a v2 store"`))
	t.Logf("the document's rollback: etcd 2.2.5 serves the %d keys, indexes = revisions, TTLs kept", n)

	// The upgrade again, then on to 3.7.3.
	r = documentRun(t, binDir, dataDir, documentUpgrade, fault.MemberDirMidSwap, "3.0.17/etcd3")
	again := serve30(t, binDir, dataDir)
	if keys, _, _ = compareV2V3(t, back, again, conversionTime(t, r.stderr, time.Now())); keys != n {
		t.Fatalf("upgrade again: %d keys compared, the rollback served %d", keys, n)
	}
	r = documentRun(t, binDir, dataDir, []string{"TARGET_STORAGE=etcd3", "TARGET_VERSION=3.7.3"}, fault.StepAfterStop+":3", "3.7.3/etcd3")
	s := etcdtest.Serve(t, binDir, "3.7.3", dataDir)
	newest := s.DumpAll(t)
	s.Stop()
	if diffs := etcdtest.Compare(again, newest, 20); len(diffs) > 0 {
		t.Fatalf("3.7.3 serves another keyspace than 3.0.17 did:\n%s", strings.Join(diffs, "\n"))
	}
	for id, ttl := range again.LeaseTTL {
		if newest.LeaseTTL[id] != ttl {
			t.Fatalf("lease %x: granted %ds at 3.0.17, %ds at 3.7.3", id, ttl, newest.LeaseTTL[id])
		}
	}
	if _, err := os.Stat(inside); err != nil {
		t.Fatalf("the backup dir inside the data dir: %v", err)
	}
	t.Logf("the upgrade again and on to 3.7.3: %d keys, %d leases identical", len(newest.Keys), len(newest.Leases))
}

// TestOldDocumentOtherReleases: etcd2 data of 2.3 and 3.0 takes the document's
// upgrade (served by 3.0.17), and 3.0.17/etcd3 rolls back to etcd2 at 2.3 (served by
// the real 2.3.8).
func TestOldDocumentOtherReleases(t *testing.T) {
	for _, v := range []string{"2.3.8", "3.0.17"} {
		t.Run(v, func(t *testing.T) {
			binDir := oldBinDir(t, v)
			dataDir := filepath.Join(t.TempDir(), "data")
			v2 := documentData(t, binDir, v, dataDir)
			if err := writeFile(filepath.Join(dataDir, "version.txt"), v+"/etcd2\n"); err != nil {
				t.Fatal(err)
			}
			r := documentRun(t, binDir, dataDir, documentUpgrade, "", "3.0.17/etcd3")
			if w := "kind=v2-to-v3 from=" + v + "/etcd2 version_txt=3.0.17/etcd3"; !strings.Contains(r.stderr, w) {
				t.Fatalf("log lacks %q:\n%s", w, r.stderr)
			}
			v3 := serve30(t, binDir, dataDir)
			keys, leased, _ := compareV2V3(t, v2, v3, conversionTime(t, r.stderr, time.Now()))
			if keys < 150 || leased < 20 {
				t.Fatalf("only %d keys (%d leased) compared", keys, leased)
			}
			if v != "2.3.8" {
				t.Logf("%s/etcd2 -> 3.0.17/etcd3: %d keys, %d leased", v, keys, leased)
				return
			}
			rb := append([]string{"TARGET_VERSION=2.3.1"}, documentRollback[0], documentRollback[2], documentRollback[3])
			r = documentRun(t, binDir, dataDir, rb, "", "2.3.8/etcd2")
			s, err := fixture.StartOld(binDir, "2.3.8", dataDir, fixture.PortPair(t), 0)
			if err != nil {
				t.Fatal(err)
			}
			back := etcdtest.DumpV2(t, s.URL)
			s.Stop()
			n := compareV3V2(t, v3, back, etcdtest.LogTime(t, r.stderr, `msg="v3 keyspace converted to a v2 store"`))
			t.Logf("2.3.8/etcd2 -> 3.0.17/etcd3 (%d keys, %d leased) -> 2.3.8/etcd2: etcd 2.3.8 serves %d keys, indexes = revisions", keys, leased, n)
		})
	}
}

// TestOldRollback37ToEtcd2At22: 3.4.13 data walked up to 3.7.3, then TARGET_VERSION=2.2.1
// TARGET_STORAGE=etcd2: down etcd3 minor by minor to 3.0 (the downgrade API, then
// snapshot restores), then to etcd2 at 2.2, served by the real 2.2.5 with every key,
// indexes = revisions.
func TestOldRollback37ToEtcd2At22(t *testing.T) {
	binDir := oldBinDir(t, "2.2.5")
	pristine := etcdtest.ExtractFixture(t, fixture34)
	want := baseline34(t, binDir, pristine)
	dataDir := etcdtest.CopyDir(t, pristine)
	if r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.7.3", "--exec=false", "--bundled-versions="+seedBundle); r.code != 0 {
		t.Fatalf("3.4.13 -> 3.7.3: exit %d\n%s", r.code, r.stderr)
	}
	start := time.Now()
	r := runMigrate(t, binDir, dataDir, documentRollback, "--exec=false", "--bundled-versions="+seedBundle)
	if r.code != 0 {
		t.Fatalf("3.7.3/etcd3 -> 2.2.1/etcd2: exit %d\n%s", r.code, r.stderr)
	}
	took := time.Since(start)
	for _, w := range []string{"kind=rollback-minor from=3.7.3/etcd3 version_txt=3.6.16/etcd3", "kind=rollback-minor from=3.1.20/etcd3 version_txt=3.0.17/etcd3",
		"kind=rollback-to-etcd2 from=3.0.17/etcd3 version_txt=2.2.5/etcd2 etcd=2.2.5", `msg="migration done" version_txt=2.2.5/etcd2 steps=8`} {
		if !strings.Contains(r.stderr, w) {
			t.Fatalf("log lacks %q:\n%s", w, r.stderr)
		}
	}
	got := serve22(t, binDir, dataDir)
	n := compareV3V2(t, want, got, time.Now())
	t.Logf("3.7.3/etcd3 -> 2.2.5/etcd2 in %v (8 steps): etcd 2.2.5 serves the %d keys of 3.4.13's fixture, indexes = revisions", took.Round(time.Millisecond), n)
}

// documentData has the real etcd v write a Kubernetes-shaped v2 keyspace into
// dataDir through the v2 API, every value JSON as the document's rollback needs:
// pods and services in namespaces (some updated, some deleted), events with TTLs,
// a dir with a TTL holding keys, an empty dir, snapshots (snapshot count 20) and a
// WAL tail after them. It returns the server's own v2 dump, with each key in a TTL
// dir given the dir's expiry (it goes with the dir, and gets its lease in v3).
func documentData(t *testing.T, binDir, v, dataDir string) map[string]etcdtest.V2Node {
	t.Helper()
	s, err := fixture.StartOld(binDir, v, dataDir, fixture.PortPair(t), 20)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	return fixture.DocumentData(t, s.URL)
}

// documentRun migrates dataDir with env (every release bundled): first killed at
// point when one is given (the kill must land, and version.txt must still say what
// it said), then to the end, then once more as a no-op.
func documentRun(t *testing.T, binDir, dataDir string, env []string, point, wantTxt string) result {
	t.Helper()
	bundle := "--bundled-versions=" + seedBundle
	if point != "" {
		before, _ := os.ReadFile(filepath.Join(dataDir, "version.txt"))
		k := runMigrate(t, binDir, dataDir, append(append([]string(nil), env...), fault.Env+"="+point), "--exec=false", bundle)
		if k.code == 0 || k.code == 1 || k.code == 2 || strings.Contains(k.stderr, `msg="migration done"`) {
			t.Fatalf("%v killed at %s: exit %d, want a kill:\n%s", env, point, k.code, k.stderr)
		}
		// Steps before the kill are recorded; the step killed is not.
		if after, _ := os.ReadFile(filepath.Join(dataDir, "version.txt")); string(after) != string(before) && (!strings.Contains(point, ":") || string(after) == wantTxt+"\n") {
			t.Fatalf("killed at %s: version.txt %q, was %q", point, after, before)
		}
	}
	start := time.Now()
	r := runMigrate(t, binDir, dataDir, env, "--exec=false", bundle)
	if r.code != 0 {
		t.Fatalf("%v: exit %d\n%s", env, r.code, r.stderr)
	}
	t.Logf("%v: %v to %s", env, time.Since(start).Round(time.Millisecond), wantTxt)
	if got := readVersionTxt(t, dataDir); got != wantTxt+"\n" {
		t.Fatalf("%v: version.txt = %q, want %s", env, got, wantTxt)
	}
	if noop := runMigrate(t, binDir, dataDir, env, "--exec=false", bundle); noop.code != 0 || !strings.Contains(noop.stderr, `msg="migration done" version_txt=`+wantTxt+" steps=0") {
		t.Fatalf("%v again: exit %d, want a no-op:\n%s", env, noop.code, noop.stderr)
	}
	return r
}

// serve30 serves dataDir with the real etcd 3.0.17 and dumps it; 3.0 has no lease
// TimeToLive, so the granted TTLs are read from the backend once it stopped.
func serve30(t *testing.T, binDir, dataDir string) etcdtest.Dump {
	t.Helper()
	s, err := fixture.StartOld(binDir, "3.0.17", dataDir, fixture.PortPair(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{s.URL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	vr, err := c.Status(ctx, s.URL)
	cancel()
	if err != nil || vr.Version != "3.0.17" {
		t.Fatalf("status of etcd 3.0.17: %+v, %v", vr, err)
	}
	d := dumpOld(t, "3.0.17", c)
	c.Close()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	keys, err := rollback.ReadKeyspace(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.KV.Lease != 0 {
			d.LeaseTTL[k.KV.Lease] = k.TTL
		}
	}
	return d
}

// serve22 serves etcd2 dataDir with the real etcd 2.2.5 and dumps its v2 keyspace.
func serve22(t *testing.T, binDir, dataDir string) map[string]etcdtest.V2Node {
	t.Helper()
	s, err := fixture.StartOld(binDir, "2.2.5", dataDir, fixture.PortPair(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	return etcdtest.DumpV2(t, s.URL)
}

// compareV3V2 checks the v2 keyspace a rollback to etcd2 left against the v3 one it
// came from: every v3 key is a v2 key with the same value, createdIndex =
// create_revision and modifiedIndex = mod_revision; a leased key expires its lease's
// TTL after the conversion (within 3 s), and no other key has a TTL; no other key
// exists. It returns the number of keys compared.
func compareV3V2(t *testing.T, v3 etcdtest.Dump, v2 map[string]etcdtest.V2Node, convertedAt time.Time) int {
	t.Helper()
	diffs, _, keys, _ := etcdtest.DiffV3V2(v3, v2, convertedAt, convertedAt, 3*time.Second, 3*time.Second)
	if len(diffs) > 0 {
		if len(diffs) > 20 {
			diffs = diffs[:20]
		}
		t.Fatalf("the v2 keyspace differs from the v3 one it came from:\n%s", strings.Join(diffs, "\n"))
	}
	if keys < 100 {
		t.Fatalf("only %d keys compared", keys)
	}
	return keys
}
