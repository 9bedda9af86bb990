// Package v3backend reads an etcd v3 backend (bolt) offline: key revisions, lease
// TTLs, auth and members, with etcd's own schema. Conversions use it to read back what they wrote and
// to read the keyspace they convert.
package v3backend

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/etcd/server/v3/etcdserver/api/membership"
	"go.etcd.io/etcd/server/v3/lease/leasepb"
	"go.etcd.io/etcd/server/v3/storage/backend"
	"go.etcd.io/etcd/server/v3/storage/mvcc"
	"go.etcd.io/etcd/server/v3/storage/schema"
)

// LeaseTTLs maps each lease ID to its remaining TTL in seconds: the checkpointed
// remaining TTL when etcd recorded one, else the granted TTL (what etcd gives a
// lease when it starts).
func LeaseTTLs(tx *bolt.Tx) (map[int64]int64, error) {
	ttls := map[int64]int64{}
	err := ForEachLease(tx, func(l *leasepb.Lease) error {
		ttls[l.ID] = l.TTL
		if l.RemainingTTL > 0 {
			ttls[l.ID] = l.RemainingTTL
		}
		return nil
	})
	return ttls, err
}

// ForEachLease decodes every lease record of the lease bucket.
func ForEachLease(tx *bolt.Tx, fn func(*leasepb.Lease) error) error {
	lb := tx.Bucket(schema.Lease.Name())
	if lb == nil {
		return nil
	}
	return lb.ForEach(func(_, v []byte) error {
		var l leasepb.Lease
		if err := l.Unmarshal(v); err != nil {
			return fmt.Errorf("lease record: %w", err)
		}
		return fn(&l)
	})
}

// HasKeyRevisions reports whether the key bucket holds an entry: false means no v3
// key was ever written. One cursor step, where KeyRevisions walks every page (on
// a 1.3 GiB db read cold through the mapping, about 40 s).
func HasKeyRevisions(tx *bolt.Tx) bool {
	kb := tx.Bucket(schema.Key.Name())
	if kb == nil {
		return false
	}
	k, _ := kb.Cursor().First()
	return k != nil
}

// KeyRevisions counts the key bucket's entries (every revision and tombstone):
// 0 means no v3 key was ever written.
func KeyRevisions(tx *bolt.Tx) int {
	if kb := tx.Bucket(schema.Key.Name()); kb != nil {
		return kb.Stats().KeyN
	}
	return 0
}

// LastRevision is the main revision of the newest key revision the backend holds
// (0 when it holds none): it moves with every write to the keyspace.
func LastRevision(tx *bolt.Tx) int64 {
	kb := tx.Bucket(schema.Key.Name())
	if kb == nil {
		return 0
	}
	k, _ := kb.Cursor().Last()
	return RevisionOf(k)
}

// ForEachRawRevision calls fn with every key revision record as stored, in
// revision order: k and v point into the mapping and are valid until the
// transaction ends (DecodeRevision decodes them).
func ForEachRawRevision(tx *bolt.Tx, fn func(k, v []byte) error) error {
	kb := tx.Bucket(schema.Key.Name())
	if kb == nil {
		return fmt.Errorf("no %q bucket", schema.Key.Name())
	}
	return kb.ForEach(fn)
}

// DecodeRevision decodes a key revision record into kv, reusing its buffers;
// tombstone marks a deletion.
func DecodeRevision(k, v []byte, kv *mvccpb.KeyValue) (tombstone bool, err error) {
	// Unmarshal merges into what is there: reset every field, keep the buffers.
	*kv = mvccpb.KeyValue{Key: kv.Key[:0], Value: kv.Value[:0]}
	if err := kv.Unmarshal(v); err != nil {
		return false, fmt.Errorf("key revision record: %w", err)
	}
	return mvcc.IsTombstone(k), nil
}

// ForEachRevision calls fn for every key revision in revision order; tombstone
// marks a deletion. kv and its Key and Value are reused for the next revision: fn
// must copy what it keeps (decoding into one record instead of a new one per
// revision halves the cost of a scan).
func ForEachRevision(tx *bolt.Tx, fn func(kv *mvccpb.KeyValue, tombstone bool) error) error {
	var kv mvccpb.KeyValue
	return ForEachRawRevision(tx, func(k, v []byte) error {
		tombstone, err := DecodeRevision(k, v, &kv)
		if err != nil {
			return err
		}
		return fn(&kv, tombstone)
	})
}

// Auth is the auth state a backend records: whether auth is on, its revision, the
// user and role names, and a checksum over every user and role record (password
// hashes, role grants, permissions), so a step can prove it changed none of them.
type Auth struct {
	Enabled  bool
	Revision uint64
	// HasRevision: the backend records an auth revision (etcd 3.1+ writes one
	// when it opens a backend; 3.0 did not).
	HasRevision bool
	Users       []string
	Roles       []string
	Sum         uint64
}

// ReadAuth reads the auth buckets with etcd's schema names; a backend without them
// (written before auth was ever touched) reads as auth off with no users.
func ReadAuth(tx *bolt.Tx) Auth {
	var a Auth
	if b := tx.Bucket(schema.Auth.Name()); b != nil {
		v := b.Get(schema.AuthEnabledKeyName)
		a.Enabled = len(v) == 1 && v[0] == 1
		if r := b.Get(schema.AuthRevisionKeyName); len(r) == 8 {
			a.Revision, a.HasRevision = binary.BigEndian.Uint64(r), true
		}
	}
	h := crc64.New(crc64.MakeTable(crc64.ECMA))
	for _, bk := range []struct {
		b     backend.Bucket
		names *[]string
	}{{schema.AuthUsers, &a.Users}, {schema.AuthRoles, &a.Roles}} {
		b := tx.Bucket(bk.b.Name())
		if b == nil {
			continue
		}
		h.Write(bk.b.Name())
		b.ForEach(func(k, v []byte) error {
			*bk.names = append(*bk.names, string(k))
			var n [8]byte
			for _, f := range [][]byte{k, v} {
				binary.BigEndian.PutUint64(n[:], uint64(len(f)))
				h.Write(n[:])
				h.Write(f)
			}
			return nil
		})
	}
	a.Sum = h.Sum64()
	return a
}

// String describes the auth state for status and logs (no secrets: names only).
func (a Auth) String() string {
	if !a.Enabled {
		return fmt.Sprintf("disabled (%d users, %d roles)", len(a.Users), len(a.Roles))
	}
	return fmt.Sprintf("enabled (revision %d; users %s; roles %s)", a.Revision, strings.Join(a.Users, ","), strings.Join(a.Roles, ","))
}

// LockWait is how long OpenReadOnly waits for the backend's file lock: a running
// etcd holds it for as long as it runs, a stopped one has released it.
const LockWait = 2 * time.Second

// OpenReadOnly opens the etcd backend at path read-only, without changing a byte.
// Every offline reader goes through it, so a backend some etcd still holds gives
// one error, within LockWait.
func OpenReadOnly(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: LockWait})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("open %s: locked by another process (is etcd running on this data dir?)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("open etcd backend %s: %w", path, err)
	}
	return db, nil
}

// Member is one cluster member as the backend's members bucket records it.
type Member struct {
	ID       types.ID
	Name     string
	PeerURLs []string
	Learner  bool
}

// ReadMembers decodes the members bucket with etcd's own member type; members the
// cluster removed (members_removed) are left out. Sorted by ID.
func ReadMembers(tx *bolt.Tx) ([]Member, error) {
	removed := map[string]bool{}
	if b := tx.Bucket(schema.MembersRemoved.Name()); b != nil {
		b.ForEach(func(k, _ []byte) error { removed[string(k)] = true; return nil })
	}
	var ms []Member
	b := tx.Bucket(schema.Members.Name())
	if b == nil {
		return nil, nil
	}
	err := b.ForEach(func(k, v []byte) error {
		if removed[string(k)] {
			return nil
		}
		id, err := types.IDFromString(string(k))
		if err != nil {
			return fmt.Errorf("member key %q: %w", k, err)
		}
		var m membership.Member
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("member %s: %w", id, err)
		}
		ms = append(ms, Member{ID: id, Name: m.Name, PeerURLs: m.PeerURLs, Learner: m.IsLearner})
		return nil
	})
	sort.Slice(ms, func(i, j int) bool { return ms[i].ID < ms[j].ID })
	return ms, err
}

// ReadAlarms lists the alarms the backend records (the alarm bucket's keys are
// etcd's AlarmMember records), as "NOSPACE on member <id>".
func ReadAlarms(tx *bolt.Tx) ([]string, error) {
	b := tx.Bucket(schema.Alarm.Name())
	if b == nil {
		return nil, nil
	}
	var out []string
	err := b.ForEach(func(k, _ []byte) error {
		var m pb.AlarmMember
		if err := m.Unmarshal(k); err != nil {
			return fmt.Errorf("alarm record %x: %w", k, err)
		}
		if m.Alarm != pb.AlarmType_NONE {
			out = append(out, fmt.Sprintf("%s on member %s", m.Alarm, types.ID(m.MemberID)))
		}
		return nil
	})
	return out, err
}

// PendingCompaction reports a compaction etcd scheduled but did not finish (it
// stopped in between): the next etcd to open the backend finishes it at start,
// removing the history up to the scheduled revision (etcd's mvcc store restore).
func PendingCompaction(tx *bolt.Tx) bool {
	meta := tx.Bucket(schema.Meta.Name())
	if meta == nil {
		return false
	}
	rev := func(name []byte) int64 {
		if v := meta.Get(name); len(v) >= 17 {
			return mvcc.BytesToRev(v).Main
		}
		return 0
	}
	return rev(schema.ScheduledCompactKeyName) > rev(schema.FinishedCompactKeyName)
}

// RevisionOf is the main revision of a key revision record's key (0 for none).
func RevisionOf(k []byte) int64 {
	if len(k) < 17 {
		return 0
	}
	return mvcc.BytesToRev(k[:17]).Main
}
