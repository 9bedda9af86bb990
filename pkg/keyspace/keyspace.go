// Package keyspace digests the v3 keyspace of a data dir offline, so each step can
// prove it changed no key: a step's etcd starts, changes versions and stops, and
// the keys must come out as they went in.
//
// No etcd step rewrites a stored key revision: upgrades, downgrades and snapshot
// restores keep the key bucket's records byte for byte. So the digest is a checksum
// of every record as stored, history included, in revision order: a step must
// leave the records up to the revision it started at exactly as it found them,
// and may add only the deletions of leased keys whose lease expired while it ran
// (Kubernetes' master leases live 15 s). One pass reads the raw records with no
// per-key state: at 1M keys about a quarter of the cost of rebuilding the live
// keyspace. The exception is a compaction etcd scheduled but did not finish: the
// step's etcd finishes it at start, which rewrites history, so that data is
// compared by its live keys (live.go).
package keyspace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"os"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/server/v3/lease/leasepb"

	"github.com/etcd-migrate/etcd-migrate/pkg/datadir"
	"github.com/etcd-migrate/etcd-migrate/pkg/v3backend"
)

// Digest is the checksum of a backend's key revision records, its leases and its
// auth state.
type Digest struct {
	// Revisions counts the key revision records (puts and deletions, history
	// included).
	Revisions int
	// Revision is the newest key revision: equal before and after a step that
	// wrote no key.
	Revision int64
	// Auth is the auth state (users, roles, permissions, on or off, revision).
	Auth     v3backend.Auth
	Duration time.Duration

	sum    uint64          // every record, in revision order
	leases map[int64]int64 // lease ID -> granted TTL

	// Set by After: the records up to the revision the step started at (mark),
	// the ones after it, and, when a lease of before is gone, the leased keys
	// live at mark.
	before       *Digest
	atMark       uint64
	nAtMark      int
	tail         []tailRecord
	tailDropped  int
	leasedAtMark map[string]int64

	// live is set instead when a compaction was pending.
	live *liveDigest
}

// recordSum is a 64-bit hash of the records in revision order (maphash, streamed,
// seeded once per process: digests are compared only within one run). It guards
// against bugs and I/O errors, not an adversary: a changed record goes unnoticed
// with a chance of 2^-64. At 1M keys it costs 0.2 s, against 0.36 s for the two
// CRC-32s the live digest uses.
type recordSum struct {
	h maphash.Hash
}

var recordSeed = maphash.MakeSeed()

func newRecordSum() *recordSum {
	s := &recordSum{}
	s.h.SetSeed(recordSeed)
	return s
}

func (s *recordSum) add(k, v []byte) {
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(k)))
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(v)))
	_, _ = s.h.Write(hdr[:])
	_, _ = s.h.Write(k)
	_, _ = s.h.Write(v)
}

func (s *recordSum) sum() uint64 { return s.h.Sum64() }

// tailRecord is a record a step's etcd wrote.
type tailRecord struct {
	key       string
	revision  int64
	tombstone bool
}

// maxTail bounds the records after mark kept one by one: a step writes a few
// deletions at most; more means the keyspace moved and the count says so.
const maxTail = 1000

// releaseEvery is how many bytes of key revision records are read between
// releases of the mapped pages (reading the db through its mmap would otherwise
// keep all of it resident).
const releaseEvery = 64 << 20

// Of digests the keyspace of the etcd3 data dir dataDir (read-only; no etcd may
// hold the data).
func Of(dataDir string) (*Digest, error) { return scan(dataDir, nil) }

// After digests dataDir as a step left it, for Compare with before, the digest
// taken before the step.
func After(dataDir string, before *Digest) (*Digest, error) {
	if before == nil {
		return nil, errors.New("keyspace digest: After needs the digest from before the step")
	}
	return scan(dataDir, before)
}

func scan(dataDir string, before *Digest) (*Digest, error) {
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
	d := &Digest{leases: map[int64]int64{}, before: before}
	err = db.View(func(tx *bolt.Tx) error {
		d.Auth = v3backend.ReadAuth(tx)
		d.Revision = v3backend.LastRevision(tx)
		// The granted TTL: the remaining one moves with every checkpoint.
		err := v3backend.ForEachLease(tx, func(l *leasepb.Lease) error { d.leases[l.ID] = l.TTL; return nil })
		if err != nil {
			return err
		}
		if pending := v3backend.PendingCompaction(tx); (before == nil && pending) || (before != nil && before.live != nil) {
			d.live, err = scanLive(db, tx, d.leases)
			return err
		}
		return d.scanRecords(db, tx)
	})
	if err != nil {
		return nil, fmt.Errorf("keyspace digest of %s: %w", path, err)
	}
	d.Duration = time.Since(start)
	return d, nil
}

// scanRecords sums every record; after a step, it also sums those up to the
// step's starting revision apart and keeps the few after it.
func (d *Digest) scanRecords(db *bolt.DB, tx *bolt.Tx) error {
	mark := int64(-1)
	var leased map[string]int64
	if b := d.before; b != nil {
		mark = b.Revision
		for id := range b.leases {
			if _, ok := d.leases[id]; !ok {
				// Its keys may have gone with it: which keys it held is
				// worth a decode of every record.
				leased = map[string]int64{}
				break
			}
		}
	}
	var kv mvccpb.KeyValue
	sum := newRecordSum()
	read := 0
	err := v3backend.ForEachRawRevision(tx, func(k, v []byte) error {
		if mark >= 0 && v3backend.RevisionOf(k) > mark {
			return d.keepTail(sum, k, v, &kv)
		}
		sum.add(k, v)
		d.Revisions++
		if leased != nil {
			tombstone, err := v3backend.DecodeRevision(k, v, &kv)
			if err != nil {
				return err
			}
			trackLeased(leased, &kv, tombstone)
		}
		if read += len(v); read >= releaseEvery {
			v3backend.ReleaseMapped(db, tx.Size())
			read = 0
		}
		return nil
	})
	d.sum = sum.sum()
	if mark >= 0 {
		if len(d.tail) == 0 && d.tailDropped == 0 {
			d.atMark, d.nAtMark = d.sum, d.Revisions
		}
		d.leasedAtMark = leased
		// The tail's records count in the sum the next step starts from.
		d.Revisions += len(d.tail) + d.tailDropped
	}
	return err
}

// keepTail records a record written after the step's starting revision: its sum
// and, for Compare, what it did to which key.
func (d *Digest) keepTail(sum *recordSum, k, v []byte, kv *mvccpb.KeyValue) error {
	// Mark is reached: the sum so far is the one Compare checks; the records
	// after it join the sum for the next step.
	if len(d.tail) == 0 && d.tailDropped == 0 {
		d.atMark, d.nAtMark = sum.sum(), d.Revisions
	}
	sum.add(k, v)
	if len(d.tail) == maxTail {
		d.tailDropped++
		return nil
	}
	tombstone, err := v3backend.DecodeRevision(k, v, kv)
	if err != nil {
		return err
	}
	d.tail = append(d.tail, tailRecord{key: string(kv.Key), revision: v3backend.RevisionOf(k), tombstone: tombstone})
	return nil
}

// trackLeased keeps the live leased keys: a key's newest record decides.
func trackLeased(leased map[string]int64, kv *mvccpb.KeyValue, tombstone bool) {
	switch {
	case !tombstone && kv.Lease != 0:
		leased[string(kv.Key)] = kv.Lease
	case len(leased) > 0:
		delete(leased, string(kv.Key))
	}
}

// ErrChanged is wrapped by Compare's error.
var ErrChanged = errors.New("the keyspace changed")

// Compare checks that after (from After(dir, before)) holds the keys of before:
// every key revision record up to before's newest byte for byte, every lease of
// before with its granted TTL unless it is gone, and after it only the deletions
// of keys whose lease is gone (expired or revoked while etcd ran). It returns how
// many leased keys expired.
func Compare(before, after *Digest) (expired int, err error) {
	if after.before != before {
		return 0, errors.New("keyspace: the digest after a step must be taken with After against the one before it")
	}
	var diffs []string
	// Data written by etcd 3.0 has no auth revision; the 3.1 that opens it writes
	// one: only two recorded revisions compare.
	if b, a := before.Auth, after.Auth; b.Enabled != a.Enabled || (b.HasRevision && b.Revision != a.Revision) || b.Sum != a.Sum {
		diffs = append(diffs, fmt.Sprintf("auth: %s before, %s after (user/role records %016x and %016x)", b, a, b.Sum, a.Sum))
	}
	if before.live != nil {
		expired, diffs = compareLive(before.live, after.live, after.leases, diffs)
		return expired, changed(diffs)
	}
	if after.nAtMark != before.Revisions || after.atMark != before.sum {
		diffs = append(diffs, fmt.Sprintf("the key revision records up to revision %d differ: %d before, %d after, checksums %016x and %016x",
			before.Revision, before.Revisions, after.nAtMark, before.sum, after.atMark))
	}
	gone := map[int64]bool{}
	for id, ttl := range before.leases {
		switch a, ok := after.leases[id]; {
		case !ok:
			gone[id] = true
		case a != ttl:
			diffs = append(diffs, fmt.Sprintf("lease %x: granted TTL %d s before, %d s after", id, ttl, a))
		}
	}
	expired, diffs = compareTail(after, gone, diffs)
	return expired, changed(diffs)
}

// compareTail checks the records a step wrote: each must delete a key whose lease
// is gone, and every key of a gone lease must be deleted.
func compareTail(after *Digest, gone map[int64]bool, diffs []string) (int, []string) {
	if after.tailDropped > 0 {
		return 0, append(diffs, fmt.Sprintf("%d key revisions written during the step", len(after.tail)+after.tailDropped))
	}
	deleted := map[string]bool{}
	for _, r := range after.tail {
		lease := after.leasedAtMark[r.key]
		switch {
		case !r.tombstone:
			diffs = append(diffs, fmt.Sprintf("key %q written at revision %d during the step", r.key, r.revision))
		case after.leasedAtMark == nil:
			diffs = append(diffs, fmt.Sprintf("key %q deleted at revision %d during the step, while no lease went", r.key, r.revision))
		case lease == 0:
			diffs = append(diffs, fmt.Sprintf("key %q without a lease deleted at revision %d during the step", r.key, r.revision))
		case !gone[lease]:
			diffs = append(diffs, fmt.Sprintf("leased key %q lost while its lease %x still exists", r.key, lease))
		default:
			deleted[r.key] = true
		}
	}
	for k, lease := range after.leasedAtMark {
		if gone[lease] && !deleted[k] {
			diffs = append(diffs, fmt.Sprintf("leased key %q kept after its lease %x went", k, lease))
		}
	}
	return len(deleted), diffs
}

// changed is the error for diffs (nil for none): the first three, sorted.
func changed(diffs []string) error {
	if len(diffs) == 0 {
		return nil
	}
	sort.Strings(diffs)
	more := ""
	if len(diffs) > 3 {
		more = fmt.Sprintf(" (and %d more)", len(diffs)-3)
		diffs = diffs[:3]
	}
	return fmt.Errorf("%w: %s%s", ErrChanged, strings.Join(diffs, "; "), more)
}
