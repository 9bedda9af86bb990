package keyspace

import (
	"errors"
	"fmt"
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
	// version and createDelta, when set, replace the record's version and shift
	// its create revision (a record damaged in place).
	version, createDelta int64
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
		kv.CreateRevision, kv.Version = created[r.key]+r.createDelta, 1
		if r.version != 0 {
			kv.Version = r.version
		}
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

// TestOneByteCaught: on 3,000 keys, one byte of one value, one key's create
// revision or version, or the lease a key is attached to (to another with the
// same TTL) changes the digest.
func TestOneByteCaught(t *testing.T) {
	var base []rev
	for i := 0; i < 3000; i++ {
		r := rev{key: fmt.Sprintf("/registry/pods/ns-%d/pod-%05d", i%7, i), value: strings.Repeat("v", 100)}
		if i%20 == 7 {
			r.lease = 7
		}
		base = append(base, r)
	}
	leases := map[int64]int64{7: 3600, 8: 3600}
	before := digest(t, base, leases)
	if before.Keys != 3000 {
		t.Fatalf("%d keys, want 3000", before.Keys)
	}
	change := func(i int, f func(*rev)) []rev {
		revs := append([]rev{}, base...)
		f(&revs[i])
		return revs
	}
	for name, revs := range map[string][]rev{
		"one byte of a value":  change(1234, func(r *rev) { r.value = r.value[:50] + "w" + r.value[51:] }),
		"a create revision":    change(2000, func(r *rev) { r.createDelta = -1 }),
		"a version":            change(99, func(r *rev) { r.version = 2 }),
		"a leased key's lease": change(147, func(r *rev) { r.lease = 8 }),
		"a leased value":       change(147, func(r *rev) { r.value = "w" + r.value[1:] }),
	} {
		if _, err := Compare(before, digest(t, revs, leases)); err == nil || !errors.Is(err, ErrChanged) {
			t.Errorf("%s changed: Compare = %v, want ErrChanged", name, err)
		}
	}
	if _, err := Compare(before, digest(t, base, leases)); err != nil {
		t.Errorf("unchanged: %v", err)
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
