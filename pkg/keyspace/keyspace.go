// Package keyspace digests the live v3 keyspace of a data dir offline, so each step
// can prove it changed no key: a step's etcd starts, changes versions and stops,
// and the keys must come out as they went in.
package keyspace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/crc64"
	"hash/maphash"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/server/v3/lease/leasepb"

	"github.com/etcd-migrate/etcd-migrate/pkg/datadir"
	"github.com/etcd-migrate/etcd-migrate/pkg/v3backend"
)

// Digest sums the live keys: every key's record (key, value, create and mod
// revision, version, lease and that lease's granted TTL) is hashed to 64 bits.
// Keys without a lease are summed (order does not matter); leased keys are kept one
// by one, because a lease may expire while a step's etcd runs (Kubernetes' master
// leases live 15 s), which deletes its keys legitimately.
type Digest struct {
	Keys      int
	unleased  uint64
	unleasedN int
	leased    map[string]leasedKey
	leases    map[int64]int64 // lease ID -> granted TTL
	// Auth is the auth state (users, roles, permissions, on or off, revision).
	Auth v3backend.Auth
	// Revision is the newest key revision: equal before and after a step that
	// wrote no key.
	Revision int64
	Duration time.Duration
}

type leasedKey struct {
	sum   uint64
	lease int64
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// keyID names a key by two independent 64-bit hashes of its bytes (maphash and
// CRC-64): a map of fixed-size entries without pointers costs, at 1M keys, a
// fraction of the memory and time of one keyed by strings (no copies of the keys,
// nothing for the GC to scan). Two keys sharing both hashes would count as one:
// about 1 in 10^26 for a million keys.
type keyID [2]uint64

var (
	keySeed = maphash.MakeSeed()
	crc64s  = crc64.MakeTable(crc64.ECMA)
)

func idOf(k []byte) keyID { return keyID{maphash.Bytes(keySeed, k), crc64.Checksum(k, crc64s)} }

// RecordSum hashes one key record (key, value, create and mod revision, version,
// lease and its TTL) to 64 bits with two hardware-accelerated CRC-32s of different
// polynomials: it guards against bugs and I/O errors, not an adversary, and costs a
// fraction of SHA-256 over every value.
func RecordSum(kv *mvccpb.KeyValue, ttl int64) uint64 {
	var hdr [56]byte
	for i, v := range []int64{int64(len(kv.Key)), int64(len(kv.Value)), kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease, ttl} {
		binary.BigEndian.PutUint64(hdr[i*8:], uint64(v))
	}
	c, e := crc32.Update(0, castagnoli, hdr[:]), crc32.Update(0, crc32.IEEETable, hdr[:])
	for _, f := range [][]byte{kv.Key, kv.Value} {
		c, e = crc32.Update(c, castagnoli, f), crc32.Update(e, crc32.IEEETable, f)
	}
	return uint64(c)<<32 | uint64(e)
}

// releaseEvery is how many bytes of key revision records are read between
// releases of the mapped pages (reading the db through its mmap would otherwise
// keep all of it resident).
const releaseEvery = 64 << 20

// Of digests the keyspace of the etcd3 data dir dataDir (read-only; no etcd may
// hold the data).
func Of(dataDir string) (*Digest, error) {
	start := time.Now()
	path := datadir.BackendPath(dataDir)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("keyspace digest: %w", err)
	}
	db, err := v3backend.OpenReadOnly(path)
	if err != nil {
		return nil, fmt.Errorf("keyspace digest: %w", err)
	}
	defer db.Close()
	// The maps hold no pointers, so a collection costs little: collect often
	// rather than let the heap double, which at 1M keys is 100 MiB.
	defer debug.SetGCPercent(debug.SetGCPercent(20))
	d := &Digest{leased: map[string]leasedKey{}, leases: map[int64]int64{}}
	err = db.View(func(tx *bolt.Tx) error {
		d.Auth = v3backend.ReadAuth(tx)
		d.Revision = v3backend.LastRevision(tx)
		// The granted TTL: the remaining one moves with every checkpoint.
		err := v3backend.ForEachLease(tx, func(l *leasepb.Lease) error { d.leases[l.ID] = l.TTL; return nil })
		if err != nil {
			return err
		}
		// The live key is a key's newest revision unless that is a tombstone.
		live, names, err := scanLive(db, tx, d.leases)
		if err != nil {
			return err
		}
		for id, r := range live {
			if r.lease == 0 {
				d.unleased += r.sum
				d.unleasedN++
			} else {
				d.leased[names[id]] = r
			}
		}
		d.Keys = len(live)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("keyspace digest of %s: %w", path, err)
	}
	d.Duration = time.Since(start)
	return d, nil
}

// scanLive reads every key revision and keeps each key's newest record unless it
// is a tombstone: its sum and lease by key ID, and the names of the leased ones.
// (A second goroutine walking the bucket while this one hashes gained nothing on
// 2 cores at 1M keys: 1.8 s either way.)
func scanLive(db *bolt.DB, tx *bolt.Tx, leases map[int64]int64) (map[keyID]leasedKey, map[keyID]string, error) {
	live, names := map[keyID]leasedKey{}, map[keyID]string{}
	var kv mvccpb.KeyValue
	read := 0
	err := v3backend.ForEachRawRevision(tx, func(k, v []byte) error {
		tombstone, err := v3backend.DecodeRevision(k, v, &kv)
		if err != nil {
			return err
		}
		keep(live, names, &kv, tombstone, leases)
		if read += len(v); read >= releaseEvery {
			v3backend.ReleaseMapped(db, tx.Size())
			read = 0
		}
		return nil
	})
	return live, names, err
}

// keep records one revision of a key: its newest record wins.
func keep(live map[keyID]leasedKey, names map[keyID]string, kv *mvccpb.KeyValue, tombstone bool, leases map[int64]int64) {
	id := idOf(kv.Key)
	if tombstone {
		delete(live, id)
		delete(names, id)
		return
	}
	live[id] = leasedKey{sum: RecordSum(kv, leases[kv.Lease]), lease: kv.Lease}
	if kv.Lease != 0 {
		names[id] = string(kv.Key)
	} else if len(names) > 0 {
		delete(names, id)
	}
}

// ErrChanged is wrapped by Compare's error.
var ErrChanged = errors.New("the keyspace changed")

// Compare checks that after holds the keys of before: the same keys without a
// lease, bit for bit; the same leased keys, except those whose lease no longer
// exists (expired or revoked while etcd ran). It returns how many leased keys
// expired.
func Compare(before, after *Digest) (expired int, err error) {
	var diffs []string
	// Data written by etcd 3.0 has no auth revision; the 3.1 that opens it writes
	// one: only two recorded revisions compare.
	if b, a := before.Auth, after.Auth; b.Enabled != a.Enabled || (b.HasRevision && b.Revision != a.Revision) || b.Sum != a.Sum {
		diffs = append(diffs, fmt.Sprintf("auth: %s before, %s after (user/role records %016x and %016x)", b, a, b.Sum, a.Sum))
	}
	if before.unleasedN != after.unleasedN || before.unleased != after.unleased {
		diffs = append(diffs, fmt.Sprintf("keys without a lease: %d before, %d after, digests %016x and %016x", before.unleasedN, after.unleasedN, before.unleased, after.unleased))
	}
	for k, a := range after.leased {
		b, ok := before.leased[k]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("leased key %q appeared", k))
		case a != b:
			diffs = append(diffs, fmt.Sprintf("leased key %q changed", k))
		}
	}
	for k, b := range before.leased {
		if _, ok := after.leased[k]; ok {
			continue
		}
		if _, alive := after.leases[b.lease]; alive {
			diffs = append(diffs, fmt.Sprintf("leased key %q lost while its lease %x still exists", k, b.lease))
			continue
		}
		expired++
	}
	if len(diffs) > 0 {
		sort.Strings(diffs)
		more := ""
		if len(diffs) > 3 {
			more = fmt.Sprintf(" (and %d more)", len(diffs)-3)
			diffs = diffs[:3]
		}
		return expired, fmt.Errorf("%w: %s%s", ErrChanged, strings.Join(diffs, "; "), more)
	}
	return expired, nil
}
