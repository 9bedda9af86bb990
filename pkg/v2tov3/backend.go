package v2tov3

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v2error"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v2store"
	"go.etcd.io/etcd/server/v3/lease/leasepb"
	"go.etcd.io/etcd/server/v3/storage/backend"
	"go.etcd.io/etcd/server/v3/storage/mvcc"
	"go.etcd.io/etcd/server/v3/storage/schema"
	"go.uber.org/zap"

	"github.com/etcd-migrate/etcd-migrate/pkg/fault"
	"github.com/etcd-migrate/etcd-migrate/pkg/keyspace"
	"github.com/etcd-migrate/etcd-migrate/pkg/v3backend"
)

// revHash is one written key revision and the checksum of its record, for the
// digest.
type revHash struct {
	rev int64
	sum uint64
}

// digestOf combines record checksums in revision order, so the v2 walk (key order)
// and the backend read-back (revision order) hash alike.
func digestOf(sums []revHash) string {
	sort.Slice(sums, func(i, j int) bool { return sums[i].rev < sums[j].rev })
	h := sha256.New()
	var n [16]byte
	for _, s := range sums {
		binary.BigEndian.PutUint64(n[:8], uint64(s.rev))
		binary.BigEndian.PutUint64(n[8:], s.sum)
		h.Write(n[:])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// batchKeys bounds the keys per backend commit: the dirty pages of one commit stay
// in memory until it is written.
const batchKeys = 5000

// writeSeed writes the db the restore starts from: etcd's buckets and the cluster
// version, no keys.
func writeSeed(lg *zap.Logger, path, clusterVersion string) error {
	be := backend.NewDefaultBackend(lg, path)
	tx := be.BatchTx()
	tx.LockOutsideApply()
	createBuckets(tx)
	if clusterVersion != "" {
		tx.UnsafePut(schema.Cluster, schema.ClusterClusterVersionKeyName, []byte(clusterVersion))
	}
	tx.Unlock()
	be.ForceCommit()
	if err := be.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}

// keyItem is one live v2 key as the backend gets it.
type keyItem struct {
	key          string
	value        *string
	created, mod uint64
	ttl          int64
}

// writeBackend writes the v2 keys into the bolt backend at path (created if
// missing) with etcd's own schema and revision encoding, plus the leases TTL keys
// need. It fills res, including the digest. It drops loaded.Store once the keys are
// listed, so the store's memory can go before the writes.
func writeBackend(ctx context.Context, lg *zap.Logger, path string, loaded *LoadResult, opts Options, res *Result) error {
	items, err := listKeys(loaded, opts, res)
	if err != nil {
		return err
	}
	be := backend.NewDefaultBackend(lg, path)
	tx := be.BatchTx()
	tx.LockOutsideApply()
	createBuckets(tx)
	sums, nLeases, werr := putKeys(ctx, be, tx, loaded, items)
	res.Keys = len(sums)
	if len(items) > 0 {
		res.MaxRevision = int64(items[len(items)-1].mod)
	}
	tx.Unlock()
	be.ForceCommit()
	if err := be.Close(); err != nil && werr == nil {
		werr = fmt.Errorf("close %s: %w", path, err)
	}
	if werr != nil {
		return werr
	}
	res.Leases = nLeases
	res.Digest = digestOf(sums)
	return nil
}

// listKeys walks the v2 keys and returns the live ones in revision order: bolt then
// appends sequentially (fast, and a compact file) instead of inserting at random.
// Expired TTL keys are left out; keys below TTLKeysDir without a TTL get DefaultTTL.
func listKeys(loaded *LoadResult, opts Options, res *Result) ([]keyItem, error) {
	ev, err := getKeys(loaded.Store)
	if err != nil {
		return nil, err
	}
	loaded.Store = nil
	now := opts.Now()
	ttlDir := strings.TrimSuffix(opts.TTLKeysDir, "/") + "/"
	var items []keyItem
	res.Dirs += walkKeys(ev.Node, func(n *v2store.NodeExtern) {
		var ttl int64
		switch {
		case n.Expiration != nil:
			remaining := n.Expiration.Sub(now)
			if remaining <= 0 {
				res.Expired++ // etcd would have deleted it at its next SYNC
				return
			}
			// Whole seconds, rounded up like the v2 API reports TTLs.
			ttl = int64((remaining + time.Second - 1) / time.Second)
			res.TTLKeys++
		case opts.TTLKeysDir != "" && strings.HasPrefix(strings.TrimPrefix(n.Key, keysPrefix), ttlDir):
			ttl = int64(opts.DefaultTTL / time.Second)
			res.DefaultTTLs++
		}
		items = append(items, keyItem{key: n.Key, value: n.Value, created: n.CreatedIndex, mod: n.ModifiedIndex, ttl: ttl})
	})
	sort.Slice(items, func(i, j int) bool { return items[i].mod < items[j].mod })
	for i := 1; i < len(items); i++ {
		if items[i].mod == items[i-1].mod {
			return nil, fmt.Errorf("v2 keys %q and %q share modifiedIndex %d: the v2 store is inconsistent", items[i-1].key, items[i].key, items[i].mod)
		}
	}
	return items, nil
}

// putKeys writes items in batches of batchKeys, one lease per distinct TTL, and
// returns each record's checksum and the number of leases. The records are
// prepared (value read back from the spool, encoded, summed) on one core while
// bbolt writes and commits the batch before on the other: at 1M keys each side is
// 3-4 s.
func putKeys(ctx context.Context, be backend.Backend, tx backend.BatchTx, loaded *LoadResult, items []keyItem) ([]revHash, int, error) {
	batches, stop := make(chan []record, 2), make(chan struct{})
	var sums []revHash
	var nLeases int
	var prepErr error
	go func() {
		defer close(batches)
		sums, nLeases, prepErr = prepareRecords(items, loaded, batches, stop)
	}()
	var err error
	written := 0
	for batch := range batches {
		if err != nil {
			continue // drain: the preparing side stops at the next batch
		}
		for _, r := range batch {
			if r.lease != nil {
				schema.MustUnsafePutLease(tx, r.lease)
			}
			tx.UnsafeSeqPut(schema.Key, r.rev, r.val)
			if written == len(items)/2 {
				fault.Point(fault.ConvertMidWrite)
			}
			written++
		}
		tx.Unlock()
		be.ForceCommit()
		tx.LockOutsideApply()
		if err = ctx.Err(); err != nil {
			close(stop)
		}
	}
	if err == nil {
		err = prepErr
	}
	return sums, nLeases, err
}

// record is one key revision ready for the backend, and the lease it is the
// first to use.
type record struct {
	rev, val []byte
	lease    *leasepb.Lease
}

// prepareRecords encodes items in order into batches of batchKeys sent to out,
// until done or stop closes.
func prepareRecords(items []keyItem, loaded *LoadResult, out chan<- []record, stop <-chan struct{}) ([]revHash, int, error) {
	leases := map[int64]int64{} // TTL seconds -> lease ID
	sums := make([]revHash, 0, len(items))
	batch := make([]record, 0, batchKeys)
	send := func() bool {
		select {
		case out <- batch:
			batch = make([]record, 0, batchKeys)
			return true
		case <-stop:
			return false
		}
	}
	var value []byte
	var err error
	for _, it := range items {
		kv := mvccpb.KeyValue{
			Key: []byte(strings.TrimPrefix(it.key, keysPrefix)), CreateRevision: int64(it.created),
			ModRevision: int64(it.mod), Version: 1,
		}
		if value, err = loaded.value(it.mod, it.value, value); err != nil {
			return sums, len(leases), err
		}
		kv.Value = value
		r := record{}
		if it.ttl > 0 {
			id, ok := leases[it.ttl]
			if !ok {
				id = leaseIDBase + int64(len(leases)) + 1
				leases[it.ttl] = id
				r.lease = &leasepb.Lease{ID: id, TTL: it.ttl}
			}
			kv.Lease = id
		}
		if r.val, err = kv.Marshal(); err != nil {
			return sums, len(leases), fmt.Errorf("encode key %q: %w", kv.Key, err)
		}
		r.rev = mvcc.RevToBytes(mvcc.Revision{Main: kv.ModRevision}, mvcc.NewRevBytes())
		batch = append(batch, r)
		sums = append(sums, revHash{rev: kv.ModRevision, sum: keyspace.RecordSum(&kv, it.ttl)})
		if len(batch) == batchKeys && !send() {
			return sums, len(leases), nil
		}
	}
	if len(batch) > 0 {
		send()
	}
	return sums, len(leases), nil
}

// createBuckets creates the buckets etcd's backend needs for keys, leases and the
// cluster version.
func createBuckets(tx backend.UnsafeWriter) {
	for _, b := range []backend.Bucket{schema.Key, schema.Meta, schema.Lease, schema.Cluster} {
		tx.UnsafeCreateBucket(b)
	}
}

// releaseEvery is how many keys the read-back reads between releases of the
// pages it mapped (about 10 MiB of Kubernetes objects).
const releaseEvery = 8192

type backendSum struct {
	keys   int
	digest string
}

// backendDigest reads a backend back (read-only) and hashes it like digest: every
// key revision in revision order with its lease's TTL.
func backendDigest(path string) (backendSum, error) {
	db, err := v3backend.OpenReadOnly(path)
	if err != nil {
		return backendSum{}, err
	}
	defer db.Close()
	var sum backendSum
	err = db.View(func(tx *bolt.Tx) error {
		ttls, err := v3backend.LeaseTTLs(tx)
		if err != nil {
			return err
		}
		var sums []revHash
		err = v3backend.ForEachRevision(tx, func(kv *mvccpb.KeyValue, _ bool) error {
			if len(sums)%releaseEvery == releaseEvery-1 {
				v3backend.ReleaseMapped(db, tx.Size())
			}
			ttl := int64(0)
			if kv.Lease != 0 {
				t, ok := ttls[kv.Lease]
				if !ok {
					return fmt.Errorf("key %q names lease %x, which does not exist", kv.Key, kv.Lease)
				}
				ttl = t
			}
			sums = append(sums, revHash{rev: kv.ModRevision, sum: keyspace.RecordSum(kv, ttl)})
			return nil
		})
		sum.keys = len(sums)
		sum.digest = digestOf(sums)
		return err
	})
	if err != nil {
		return backendSum{}, fmt.Errorf("read back %s: %w", path, err)
	}
	return sum, nil
}

// getKeys reads the v2 store's user keyspace (an empty one when it has none).
func getKeys(st v2store.Store) (*v2store.Event, error) {
	ev, err := st.Get(keysPrefix, true, false)
	var verr *v2error.Error
	if errors.As(err, &verr) && verr.ErrorCode == v2error.EcodeKeyNotFound {
		return &v2store.Event{Node: &v2store.NodeExtern{Key: keysPrefix, Dir: true}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read v2 keys: %w", err)
	}
	return ev, nil
}

// walkKeys calls leaf for every key below n, depth first, and returns the number of
// directories below the keyspace root. A key below a directory with a TTL is
// passed with the directory's expiration when that comes first: v2 deletes the
// directory with everything in it when it expires (and so would its expiry
// sweep), so the key must not outlive it in v3.
func walkKeys(n *v2store.NodeExtern, leaf func(*v2store.NodeExtern)) int {
	if !n.Dir {
		leaf(n)
		return 0
	}
	dirs := 0
	if n.Key != keysPrefix {
		dirs++
	}
	for _, c := range n.Nodes {
		if n.Expiration != nil && (c.Expiration == nil || c.Expiration.After(*n.Expiration)) {
			c.Expiration = n.Expiration
		}
		dirs += walkKeys(c, leaf)
	}
	return dirs
}
