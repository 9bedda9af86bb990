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
	// main and createRev, when set, give the record's revision and create
	// revision; compact, when set, records a compaction at that revision as
	// scheduled and not finished.
	main, createRev, compact int64
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
	tx.UnsafeCreateBucket(schema.Meta)
	for id, ttl := range leases {
		schema.MustUnsafePutLease(tx, &leasepb.Lease{ID: id, TTL: ttl})
	}
	created := map[string]int64{}
	for i, r := range revs {
		main := int64(i + 1)
		if r.main != 0 {
			main = r.main
		}
		if r.compact != 0 {
			mvcc.UnsafeSetScheduledCompact(tx, r.compact)
		}
		kv := mvccpb.KeyValue{Key: []byte(r.key), Value: []byte(r.value), ModRevision: main, Lease: r.lease}
		if created[r.key] == 0 {
			created[r.key] = main
		}
		kv.CreateRevision, kv.Version = created[r.key]+r.createDelta, 1
		if r.createRev != 0 {
			kv.CreateRevision = r.createRev
		}
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

// check digests revs and leases as a step's result against before and compares.
func check(t *testing.T, before *Digest, revs []rev, leases map[int64]int64) (int, error) {
	t.Helper()
	after, err := After(writeData(t, revs, leases), before)
	if err != nil {
		t.Fatal(err)
	}
	return Compare(before, after)
}

func TestCompare(t *testing.T) {
	base := []rev{{key: "/a", value: "1"}, {key: "/b", value: "2"}, {key: "/a", value: "3"}, {key: "/gone", value: "x"}, {key: "/gone", tombstone: true},
		{key: "/lease/x", value: "x", lease: 7}, {key: "/lease/y", value: "y", lease: 8}}
	leases := map[int64]int64{7: 15, 8: 3600}
	before := digest(t, base, leases)
	if before.Revisions != 7 || before.Revision != 7 || before.live != nil {
		t.Fatalf("%d records up to revision %d (live %v), want 7 up to 7 from the records", before.Revisions, before.Revision, before.live != nil)
	}
	plus := func(extra ...rev) []rev { return append(append([]rev{}, base...), extra...) }
	tests := []struct {
		name        string
		revs        []rev
		leases      map[int64]int64
		wantErr     string
		wantExpired int
	}{
		{"unchanged", base, leases, "", 0},
		{"lease 7 expired with its key", plus(rev{key: "/lease/x", tombstone: true}), map[int64]int64{8: 3600}, "", 1},
		{"a barrier lease granted", base, map[int64]int64{7: 15, 8: 3600, 9: 60}, "", 0},
		{"value changed", append(append([]rev{}, base[:2]...), append([]rev{{key: "/a", value: "4"}}, base[3:]...)...), leases, "the key revision records up to revision 7 differ: 7 before, 7 after", 0},
		{"a record lost", append([]rev{}, base[:6]...), leases, "the key revision records up to revision 7 differ: 7 before, 6 after", 0},
		{"unleased key lost", plus(rev{key: "/b", tombstone: true}), leases, `key "/b" deleted at revision 8 during the step, while no lease went`, 0},
		{"unleased key lost as a lease expired", plus(rev{key: "/b", tombstone: true}, rev{key: "/lease/x", tombstone: true}), map[int64]int64{8: 3600}, `key "/b" without a lease deleted at revision 8 during the step`, 0},
		{"leased key lost with its lease alive", plus(rev{key: "/lease/y", tombstone: true}, rev{key: "/lease/x", tombstone: true}), map[int64]int64{8: 3600}, `leased key "/lease/y" lost while its lease 8 still exists`, 0},
		{"leased key kept after its lease went", base, map[int64]int64{8: 3600}, `leased key "/lease/x" kept after its lease 7 went`, 0},
		{"lease TTL changed", base, map[int64]int64{7: 15, 8: 60}, "lease 8: granted TTL 3600 s before, 60 s after", 0},
		{"key appeared", plus(rev{key: "/lease/z", value: "z", lease: 8}), leases, `key "/lease/z" written at revision 8 during the step`, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			expired, err := check(t, before, tc.revs, tc.leases)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrChanged)):
				t.Fatalf("error %v, want ErrChanged containing %q", err, tc.wantErr)
			case err == nil && expired != tc.wantExpired:
				t.Fatalf("%d expired, want %d", expired, tc.wantExpired)
			}
		})
	}
	// The digest after a step is the next step's before: its sum covers the
	// deletion it added.
	after, err := After(writeData(t, plus(rev{key: "/lease/x", tombstone: true}), map[int64]int64{8: 3600}), before)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := check(t, after, plus(rev{key: "/lease/x", tombstone: true}), map[int64]int64{8: 3600}); err != nil {
		t.Fatalf("the next step, unchanged: %v", err)
	}
	if _, err := check(t, after, base, map[int64]int64{8: 3600}); err == nil {
		t.Fatal("the next step lost the deletion the step before wrote, unnoticed")
	}
	if _, err := Compare(before, digest(t, base, leases)); err == nil {
		t.Fatal("Compare took a digest not taken against before")
	}
}

// TestOneByteCaught: on 3,000 keys, one byte of one value, one key's create
// revision or version, the lease a key is attached to (to another with the same
// TTL), or a lease's TTL changes the digest; with the records digested as stored
// and, for data with a pending compaction, by live keys.
func TestOneByteCaught(t *testing.T) {
	for _, pending := range []bool{false, true} {
		t.Run(fmt.Sprintf("pending compaction %v", pending), func(t *testing.T) {
			var base []rev
			for i := 0; i < 3000; i++ {
				r := rev{key: fmt.Sprintf("/registry/pods/ns-%d/pod-%05d", i%7, i), value: strings.Repeat("v", 100)}
				if i%20 == 7 {
					r.lease = 7
				}
				base = append(base, r)
			}
			if pending {
				base[0].compact = 2
			}
			leases := map[int64]int64{7: 3600, 8: 3600}
			before := digest(t, base, leases)
			if (before.live != nil) != pending {
				t.Fatalf("digest by live keys %v, want %v", before.live != nil, pending)
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
				if _, err := check(t, before, revs, leases); err == nil || !errors.Is(err, ErrChanged) {
					t.Errorf("%s changed: Compare = %v, want ErrChanged", name, err)
				}
			}
			if _, err := check(t, before, base, map[int64]int64{7: 3599, 8: 3600}); err == nil || !errors.Is(err, ErrChanged) {
				t.Errorf("a lease's TTL changed: Compare = %v, want ErrChanged", err)
			}
			if _, err := check(t, before, base, leases); err != nil {
				t.Errorf("unchanged: %v", err)
			}
		})
	}
}

// A compaction scheduled but not finished is finished by the step's etcd at start:
// history up to it goes, the live keys stay, and the digest must accept that.
func TestPendingCompactionFinished(t *testing.T) {
	revs := []rev{{key: "/a", value: "1", compact: 3}, {key: "/a", value: "2"}, {key: "/b", value: "x"}, {key: "/b", tombstone: true}, {key: "/c", value: "3"}}
	before := digest(t, revs, nil)
	if before.live == nil {
		t.Fatal("a pending compaction did not select the digest by live keys")
	}
	// etcd's compaction at 3 keeps /a's newest record (revision 2) and /c.
	compacted := []rev{{key: "/a", value: "2", main: 2, createRev: 1}, {key: "/b", value: "x", main: 3}, {key: "/b", tombstone: true, main: 4}, {key: "/c", value: "3", main: 5}}
	if _, err := check(t, before, compacted, nil); err != nil {
		t.Fatalf("compaction finished: %v", err)
	}
	compacted[0].value = "1"
	if _, err := check(t, before, compacted, nil); err == nil {
		t.Fatal("a changed live value after the compaction went unnoticed")
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
	withBarrier := map[int64]int64{7: 60, barrier: 60, barrier + 1: 60}
	if _, err := check(t, before, revs, withBarrier); err != nil {
		t.Fatalf("barrier leases changed the digest: %v", err)
	}
	if _, err := check(t, digest(t, revs, withBarrier), revs, map[int64]int64{7: 60}); err != nil {
		t.Fatalf("revoked barrier leases changed the digest: %v", err)
	}
	if _, err := check(t, before, revs, map[int64]int64{7: 61, barrier: 60}); err == nil {
		t.Fatal("a changed TTL of a lease holding a key went unnoticed")
	}
}
