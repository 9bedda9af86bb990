package keyspace

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"hash/crc64"
	"hash/maphash"
	"runtime/debug"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/etcd-migrate/etcd-migrate/pkg/v3backend"
)

// liveDigest sums the live keys, for data whose history the step's etcd rewrites
// (a pending compaction): every key's record (key, value, create and mod revision,
// version, lease and that lease's granted TTL) is hashed to 64 bits. Keys without a
// lease are summed (order does not matter); leased keys are kept one by one,
// because a lease may expire while a step's etcd runs, which deletes its keys
// legitimately.
type liveDigest struct {
	unleased  uint64
	unleasedN int
	leased    map[string]leasedKey
}

type leasedKey struct {
	sum   uint64
	lease int64
}

// keyID names a key by two independent 64-bit hashes of its bytes (maphash and
// CRC-64): a map of fixed-size entries without pointers costs, at 1M keys, a
// fraction of the memory and time of one keyed by strings (no copies of the keys,
// nothing for the GC to scan). Two keys sharing both hashes would count as one:
// about 1 in 10^26 for a million keys.
type keyID [2]uint64

var (
	keySeed    = maphash.MakeSeed()
	crc64s     = crc64.MakeTable(crc64.ECMA)
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

func idOf(k []byte) keyID { return keyID{maphash.Bytes(keySeed, k), crc64.Checksum(k, crc64s)} }

// RecordSum hashes one key record (key, value, create and mod revision, version,
// lease and its TTL) to 64 bits with two CRC-32s of different polynomials (the
// live digest and the etcd2 conversion's read-back use it).
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

// scanLive reads every key revision and keeps each key's newest record unless it
// is a tombstone.
func scanLive(db *bolt.DB, tx *bolt.Tx, leases map[int64]int64) (*liveDigest, error) {
	// The maps hold no pointers, so a collection costs little: collect often
	// rather than let the heap double, which at 1M keys is 100 MiB.
	defer debug.SetGCPercent(debug.SetGCPercent(20))
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
	if err != nil {
		return nil, err
	}
	d := &liveDigest{leased: map[string]leasedKey{}}
	for id, r := range live {
		if r.lease == 0 {
			d.unleased += r.sum
			d.unleasedN++
		} else {
			d.leased[names[id]] = r
		}
	}
	return d, nil
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

// compareLive: the same keys without a lease, bit for bit; the same leased keys,
// except those whose lease no longer exists.
func compareLive(before, after *liveDigest, afterLeases map[int64]int64, diffs []string) (expired int, _ []string) {
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
		if _, alive := afterLeases[b.lease]; alive {
			diffs = append(diffs, fmt.Sprintf("leased key %q lost while its lease %x still exists", k, b.lease))
			continue
		}
		expired++
	}
	return expired, diffs
}
