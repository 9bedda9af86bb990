package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// TestToEtcd2AndBack rolls the 3.4.13 etcd3 fixture back to 3.4.13/etcd2: served by
// etcd 3.4.13 with the v2 API, every key reads back with modifiedIndex =
// mod_revision, createdIndex = create_revision and a TTL where it had a lease. Then
// the etcd2 data walks up to 3.7.3/etcd3 again and matches the original: values and
// revisions kept (the version counter restarts at 1 and leases are regrouped by TTL,
// as the v2 store records neither).
func TestToEtcd2AndBack(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	pristine := etcdtest.ExtractFixture(t, fixture34)
	want := baseline34(t, binDir, pristine)
	dataDir := etcdtest.CopyDir(t, pristine)

	r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.4.13", "--target-storage=etcd2", "--exec=false")
	if r.code != 0 {
		t.Fatalf("to etcd2: exit %d\n%s", r.code, r.stderr)
	}
	if got := readVersionTxt(t, dataDir); got != "3.4.13/etcd2\n" {
		t.Fatalf("version.txt = %q", got)
	}
	s := etcdtest.ServeV2(t, binDir, "3.4.13", dataDir)
	v2 := etcdtest.DumpV2(t, s.ClientURL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if resp, err := s.Client.Get(ctx, "\x00", clientFromKey()...); err != nil || resp.Count != 0 {
		t.Fatalf("the v3 keyspace of etcd2 data must be empty: %v keys, %v", resp.Count, err)
	}
	s.Stop()
	leased := 0
	for k, kv := range want.Keys {
		n, ok := v2[k]
		if !ok || n.Dir {
			t.Fatalf("key %q missing from the v2 store", k)
		}
		if n.Value != kv.Value || n.CreatedIndex != uint64(kv.CreateRevision) || n.ModifiedIndex != uint64(kv.ModRevision) {
			t.Fatalf("key %q: v2 created=%d modified=%d, v3 had create=%d mod=%d (values equal %v)", k, n.CreatedIndex, n.ModifiedIndex, kv.CreateRevision, kv.ModRevision, n.Value == kv.Value)
		}
		if (kv.Lease != 0) != (n.TTL > 0) {
			t.Fatalf("key %q: lease %x but v2 TTL %d", k, kv.Lease, n.TTL)
		}
		if kv.Lease != 0 {
			leased++
			if granted := want.LeaseTTL[kv.Lease]; n.TTL > granted || n.TTL < granted-30 {
				t.Fatalf("key %q: v2 TTL %d, lease granted %d", k, n.TTL, granted)
			}
		}
	}
	files := 0
	for _, n := range v2 {
		if !n.Dir {
			files++
		}
	}
	if files != len(want.Keys) || leased == 0 {
		t.Fatalf("v2 store has %d keys (%d with TTL), want %d", files, leased, len(want.Keys))
	}

	r = runMigrate(t, binDir, dataDir, nil, "--target-version=3.7.3", "--exec=false")
	if r.code != 0 {
		t.Fatalf("back to etcd3: exit %d\n%s", r.code, r.stderr)
	}
	s = etcdtest.Serve(t, binDir, "3.7.3", dataDir)
	got := s.DumpAll(t)
	for k, w := range want.Keys {
		g, ok := got.Keys[k]
		if !ok || g.Value != w.Value || g.CreateRevision != w.CreateRevision || g.ModRevision != w.ModRevision || (g.Lease != 0) != (w.Lease != 0) {
			t.Fatalf("round trip: key %q: %+v, want %+v", k, g, w)
		}
	}
	if len(got.Keys) != len(want.Keys) {
		t.Fatalf("round trip: %d keys, want %d", len(got.Keys), len(want.Keys))
	}
}

// TestToEtcd2RefusesProtobuf: values under the prefix that are not JSON (Kubernetes'
// protobuf encoding) stop the move before anything is touched.
func TestToEtcd2RefusesProtobuf(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	dataDir := etcdtest.ExtractFixture(t, fixture34)
	s := etcdtest.Serve(t, binDir, "3.4.13", dataDir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, k := range []string{"/registry/pods/ns-1/pb-a", "/registry/pods/ns-1/pb-b"} {
		if _, err := s.Client.Put(ctx, k, "k8s\x00\n\x0c\n\x02v1\x12\x03Pod"); err != nil {
			t.Fatal(err)
		}
	}
	s.Stop()
	before := etcdtest.Checksum(t, dataDir)
	r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.4.13", "--target-storage=etcd2", "--exec=false")
	line := errorLine(t, r)
	if r.code != 2 || !strings.Contains(line, `2 values under /registry/ are not JSON (first: "/registry/pods/ns-1/pb-a"; protobuf starts with "k8s\x00")`) ||
		!strings.Contains(line, "STORAGE_MEDIA_TYPE=application/json") {
		t.Fatalf("exit %d: %s", r.code, line)
	}
	if etcdtest.Checksum(t, dataDir) != before {
		t.Fatal("data dir changed")
	}
}
