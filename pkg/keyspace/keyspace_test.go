package keyspace

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/server/v3/lease/leasepb"
	"go.etcd.io/etcd/server/v3/storage/backend"
	"go.etcd.io/etcd/server/v3/storage/mvcc"
	"go.etcd.io/etcd/server/v3/storage/schema"
	"go.uber.org/zap"
)

type rev struct {
	key, value string
	lease      int64
	tombstone  bool
}

// writeData writes an etcd3 data dir whose backend holds revs (revision i+1 each)
// and the given leases (ID -> TTL), with etcd's schema.
func writeData(t *testing.T, revs []rev, leases map[int64]int64) string {
	t.Helper()
	dataDir := t.TempDir()
	snapDir := filepath.Join(dataDir, "member", "snap")
	if err := os.MkdirAll(snapDir, 0o700); err != nil {
		t.Fatal(err)
	}
	be := backend.NewDefaultBackend(zap.NewNop(), filepath.Join(snapDir, "db"))
	tx := be.BatchTx()
	tx.LockOutsideApply()
	tx.UnsafeCreateBucket(schema.Key)
	tx.UnsafeCreateBucket(schema.Lease)
	for id, ttl := range leases {
		schema.MustUnsafePutLease(tx, &leasepb.Lease{ID: id, TTL: ttl})
	}
	created := map[string]int64{}
	for i, r := range revs {
		main := int64(i + 1)
		kv := mvccpb.KeyValue{Key: []byte(r.key), Value: []byte(r.value), ModRevision: main, Lease: r.lease}
		if created[r.key] == 0 {
			created[r.key] = main
		}
		kv.CreateRevision, kv.Version = created[r.key], 1
		k := mvcc.RevToBytes(mvcc.Revision{Main: main}, mvcc.NewRevBytes())
		if r.tombstone {
			// etcd marks a deletion with a 't' after the revision (mvcc's
			// markTombstone, not exported).
			k = append(k, 't')
			kv = mvccpb.KeyValue{Key: []byte(r.key)}
			delete(created, r.key)
		}
		v, err := kv.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		tx.UnsafeSeqPut(schema.Key, k, v)
	}
	tx.Unlock()
	be.ForceCommit()
	if err := be.Close(); err != nil {
		t.Fatal(err)
	}
	return dataDir
}

func digest(t *testing.T, revs []rev, leases map[int64]int64) *Digest {
	t.Helper()
	d, err := Of(writeData(t, revs, leases))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestCompare(t *testing.T) {
	base := []rev{{key: "/a", value: "1"}, {key: "/b", value: "2"}, {key: "/a", value: "3"}, {key: "/gone", value: "x"}, {key: "/gone", tombstone: true},
		{key: "/lease/x", value: "x", lease: 7}, {key: "/lease/y", value: "y", lease: 8}}
	leases := map[int64]int64{7: 15, 8: 3600}
	before := digest(t, base, leases)
	if before.Keys != 4 {
		t.Fatalf("%d live keys, want 4 (/a, /b, /lease/x, /lease/y)", before.Keys)
	}
	tests := []struct {
		name        string
		revs        []rev
		leases      map[int64]int64
		wantErr     string
		wantExpired int
	}{
		{"unchanged", base, leases, "", 0},
		{"lease 7 expired with its key", append(append([]rev{}, base...), rev{key: "/lease/x", tombstone: true}), map[int64]int64{8: 3600}, "", 1},
		{"value changed", append(append([]rev{}, base[:2]...), append([]rev{{key: "/a", value: "4"}}, base[3:]...)...), leases, "keys without a lease: 2 before, 2 after", 0},
		{"unleased key lost", append(append([]rev{}, base...), rev{key: "/b", tombstone: true}), leases, "keys without a lease: 2 before, 1 after", 0},
		{"leased key lost with its lease alive", append(append([]rev{}, base...), rev{key: "/lease/y", tombstone: true}), leases, `leased key "/lease/y" lost while its lease 8 still exists`, 0},
		{"lease TTL changed", base, map[int64]int64{7: 15, 8: 60}, `leased key "/lease/y" changed`, 0},
		{"key appeared", append(append([]rev{}, base...), rev{key: "/lease/z", value: "z", lease: 8}), leases, `leased key "/lease/z" appeared`, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			expired, err := Compare(before, digest(t, tc.revs, tc.leases))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			case expired != tc.wantExpired:
				t.Fatalf("%d expired, want %d", expired, tc.wantExpired)
			}
		})
	}
}

// The lock-step barrier of a cluster of several members (pkg/lockstep) grants and
// revokes leases that hold no key: the digest must not see them, while a changed
// TTL of a lease that holds a key is still caught.
func TestBarrierLeasesInvisible(t *testing.T) {
	revs := []rev{{key: "/registry/a", value: "1"}, {key: "/registry/b", value: "2", lease: 7}}
	before := digest(t, revs, map[int64]int64{7: 60})
	if before.Revision != 2 {
		t.Errorf("Revision = %d, want the newest key revision 2", before.Revision)
	}
	barrier := int64(0x6d6704cb21f79ae3) // a barrier lease ID: "mg", rank, member bits
	after := digest(t, revs, map[int64]int64{7: 60, barrier: 60, barrier + 1: 60})
	if _, err := Compare(before, after); err != nil {
		t.Fatalf("barrier leases changed the digest: %v", err)
	}
	if _, err := Compare(after, before); err != nil {
		t.Fatalf("revoked barrier leases changed the digest: %v", err)
	}
	changed := digest(t, revs, map[int64]int64{7: 61, barrier: 60})
	if _, err := Compare(before, changed); err == nil {
		t.Fatal("a changed TTL of a lease holding a key went unnoticed")
	}
}
