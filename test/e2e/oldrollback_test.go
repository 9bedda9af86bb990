//go:build oldetcd

package e2e

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/internal/fixture"
)

// TestOldRollbackTo30: etcd3 data written by the real etcd 3.0.17 walks up to 3.7.3
// and rolls back, one minor per step, to 3.0.17: 3.7 -> 3.6 -> 3.5 by etcd's
// downgrade API, then 3.5 -> 3.4 -> 3.3 -> 3.2 -> 3.1 -> 3.0 by a snapshot of the
// minor being left restored with the older etcdctl. The real 3.0.17 then serves
// every key with its value, create/mod revision and version, the leases with
// their keys, and the compaction, as it wrote them.
func TestOldRollbackTo30(t *testing.T) {
	const v = "3.0.17"
	binDir := oldBinDir(t, v)
	dataDir := filepath.Join(t.TempDir(), "data")
	var before etcdtest.Dump
	gen, err := fixture.GenerateEtcd3Old(binDir, v, dataDir, fixture.PortPair(t), false, func(c *clientv3.Client) error {
		before = dumpOld(t, v, c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	bundle := "--bundled-versions=" + seedBundle
	if r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.7.3", "--exec=false", bundle); r.code != 0 {
		t.Fatalf("walk to 3.7.3: exit %d\n%s", r.code, r.stderr)
	}
	start := time.Now()
	r := runMigrate(t, binDir, dataDir, nil, "--target-version="+v, "--exec=false", bundle)
	if r.code != 0 {
		t.Fatalf("rollback to %s: exit %d\n%s", v, r.code, r.stderr)
	}
	took := time.Since(start)
	for _, w := range []string{
		"kind=rollback-minor from=3.7.3/etcd3 version_txt=3.6.16/etcd3",
		"kind=rollback-minor from=3.5.35/etcd3 version_txt=3.4.25/etcd3",
		"kind=rollback-minor from=3.4.25/etcd3 version_txt=3.3.27/etcd3 etcd=3.3.27 cluster_version=3.3.0",
		"kind=rollback-minor from=3.1.20/etcd3 version_txt=3.0.17/etcd3 etcd=3.0.17 cluster_version=3.0.0",
		`msg="migration done" version_txt=3.0.17/etcd3 steps=7`,
	} {
		if !strings.Contains(r.stderr, w) {
			t.Fatalf("rollback log lacks %q:\n%s", w, r.stderr)
		}
	}
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.Contains(l, `msg="step done"`) {
			f := strings.Fields(l)
			t.Logf("%s %s %s", f[4], f[5], f[len(f)-1]) // kind, from, duration_ms
		}
	}
	if got := readVersionTxt(t, dataDir); got != v+"/etcd3\n" {
		t.Fatalf("version.txt = %q", got)
	}

	s, err := fixture.StartOld(binDir, v, dataDir, fixture.PortPair(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{s.URL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	after := dumpOld(t, v, c)
	if diffs := etcdtest.Compare(before, after, 20); len(diffs) > 0 {
		t.Fatalf("etcd %s after the rollback serves another keyspace than it wrote:\n%s", v, strings.Join(diffs, "\n"))
	}
	if len(before.Leases) < 2 || len(after.Leases) != len(before.Leases) {
		t.Fatalf("leases with keys: %d before, %d after", len(before.Leases), len(after.Leases))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, err = c.Get(ctx, "/registry/pods/ns-0/pod-0", clientv3.WithRev(gen.CompactRevision-1))
	cancel()
	if !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("read below the compaction (rev %d): %v, want %v", gen.CompactRevision-1, err, rpctypes.ErrCompacted)
	}
	t.Logf("3.7.3 -> %s in %v (7 steps): etcd %s serves %d keys at revision %d, %d leases, compacted at %d: identical to what it wrote",
		v, took.Round(time.Millisecond), v, len(after.Keys), after.Revision, len(after.Leases), gen.CompactRevision)
}

// TestOldRollbackToEtcd2At31: 3.4.13/etcd3 data rolls back in etcd3 to 3.1 (three
// snapshot restores) and then to etcd2 at 3.1.20, the oldest etcd that reads the
// WAL migrate writes; the real 3.1.20 serves every key through v2 with its value,
// createdIndex = create_revision and modifiedIndex = mod_revision.
func TestOldRollbackToEtcd2At31(t *testing.T) {
	binDir := oldBinDir(t, "3.1.20")
	pristine := etcdtest.ExtractFixture(t, fixture34)
	want := baseline34(t, binDir, pristine)
	dataDir := etcdtest.CopyDir(t, pristine)
	r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.1.20", "--target-storage=etcd2", "--exec=false", "--bundled-versions="+seedBundle)
	if r.code != 0 {
		t.Fatalf("3.4.13/etcd3 -> 3.1.20/etcd2: exit %d\n%s", r.code, r.stderr)
	}
	for _, w := range []string{"kind=rollback-minor from=3.2.32/etcd3 version_txt=3.1.20/etcd3",
		"kind=rollback-to-etcd2 from=3.1.20/etcd3 version_txt=3.1.20/etcd2 etcd=3.1.20", `msg="migration done" version_txt=3.1.20/etcd2 steps=4`} {
		if !strings.Contains(r.stderr, w) {
			t.Fatalf("log lacks %q:\n%s", w, r.stderr)
		}
	}
	s, err := fixture.StartOld(binDir, "3.1.20", dataDir, fixture.PortPair(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	got := etcdtest.DumpV2(t, s.URL)
	n := 0
	for k, kv := range want.Keys {
		g, ok := got[k]
		if !ok || g.Dir || g.Value != kv.Value || g.CreatedIndex != uint64(kv.CreateRevision) || g.ModifiedIndex != uint64(kv.ModRevision) {
			t.Fatalf("key %q: v3 %+v, served by 3.1.20 through v2 as %+v (present %v)", k, kv, g, ok)
		}
		n++
	}
	for k, g := range got {
		if _, ok := want.Keys[k]; !ok && !g.Dir {
			t.Fatalf("key %q appeared", k)
		}
	}
	t.Logf("3.4.13/etcd3 -> 3.1.20/etcd2: etcd 3.1.20 serves the %d keys through v2, indexes = revisions", n)
}
