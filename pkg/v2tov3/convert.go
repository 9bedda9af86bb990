package v2tov3

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v2error"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v2store"
	"go.etcd.io/etcd/server/v3/lease/leasepb"
	"go.etcd.io/etcd/server/v3/storage/backend"
	"go.etcd.io/etcd/server/v3/storage/mvcc"
	"go.etcd.io/etcd/server/v3/storage/schema"
	"go.uber.org/zap"

	"github.com/etcd-migrate/etcd-migrate/pkg/datadir"
	"github.com/etcd-migrate/etcd-migrate/pkg/fault"
	"github.com/etcd-migrate/etcd-migrate/pkg/keyspace"
	"github.com/etcd-migrate/etcd-migrate/pkg/memberdir"
	"github.com/etcd-migrate/etcd-migrate/pkg/v3backend"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// leaseIDBase marks the leases the conversion creates ("migr" in the high bytes);
// etcd's own lease IDs come from a member-ID-based generator and do not collide.
const leaseIDBase = int64(0x6d69677200000000)

// Options configures one conversion.
type Options struct {
	DataDir string
	// Target is what version.txt will record once the converted data is served.
	Target versionfile.Pair
	// ClusterVersion is recorded in the new backend, e.g. "3.4.0" for a conversion
	// at etcd 3.4.13: the first etcd to serve the data.
	ClusterVersion string
	// Member identity of the fresh member dir.
	Name           string
	PeerURLs       []string
	InitialCluster string
	// TTLKeysDir: keys below it that have no v2 TTL still get a lease of
	// DefaultTTL, as the Kubernetes migration did for events.
	TTLKeysDir string
	DefaultTTL time.Duration
	Now        func() time.Time
	Logger     *slog.Logger
}

// Result reports what a conversion did.
type Result struct {
	Keys, Dirs, Expired  int
	TTLKeys, DefaultTTLs int // keys leased for their v2 TTL / for the TTL keys dir
	Leases               int
	MaxRevision          int64
	Digest               string // over key, value, create/mod revision, version, lease TTL
	SnapshotIndex        uint64
	AppliedIndex         uint64
}

// Convert turns the etcd2 data dir into etcd3 data in place. The original member
// dir is moved aside only after the new one is complete and verified; the caller
// records version.txt and then calls Cleanup. When ctx ends (a signal), it stops at
// the next phase or batch and leaves the data dir as it was.
func Convert(ctx context.Context, opts Options) (*Result, error) {
	lg := zap.NewNop()
	log := opts.Logger
	start := time.Now()
	if err := refuseV3Keys(opts.DataDir); err != nil {
		return nil, err
	}
	work, err := memberdir.Begin(opts.DataDir, "v2tov3", opts.Target)
	if err != nil {
		return nil, err
	}
	defer work.AbortUnlessReplaced()
	loaded, err := LoadStore(lg, opts.DataDir, work.Path("values"))
	if err != nil {
		return nil, err
	}
	defer loaded.Close()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res := &Result{SnapshotIndex: loaded.SnapshotIndex, AppliedIndex: loaded.AppliedIndex}
	loadedAt := time.Since(start)
	// etcdutl's restore maps the whole db with MAP_POPULATE (etcd's backend does on
	// Linux), so it restores a seed db holding no keys, and the keys go into the
	// restored db afterwards: same content, but the db is never mapped whole and
	// never copied.
	seedPath := work.Path("seed.db")
	if err := writeSeed(lg, seedPath, opts.ClusterVersion); err != nil {
		return nil, err
	}
	out := work.Path("out")
	err = snapshot.NewV3(lg).Restore(snapshot.RestoreConfig{
		SnapshotPath:        seedPath,
		Name:                opts.Name,
		OutputDataDir:       out,
		PeerURLs:            opts.PeerURLs,
		InitialCluster:      opts.InitialCluster,
		InitialClusterToken: "etcd-cluster",
		SkipHashCheck:       true,
	})
	if err != nil {
		return nil, fmt.Errorf("write the new member dir in %s: %w", out, err)
	}
	if err := os.Remove(seedPath); err != nil {
		return nil, err
	}
	dbPath := datadir.BackendPath(out)
	err = writeBackend(ctx, lg, dbPath, loaded, opts, res)
	if cerr := loaded.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	// The v2 store is garbage now; hand its memory back before the read-back maps
	// the new backend.
	debug.FreeOSMemory()
	got, err := backendDigest(datadir.BackendPath(out))
	if err != nil {
		return nil, err
	}
	if got.digest != res.Digest || got.keys != res.Keys {
		return nil, fmt.Errorf("verification failed: the v2 keyspace (%d keys, digest %s) and the converted v3 keyspace (%d keys, digest %s) differ; the etcd2 data dir %s is unchanged", res.Keys, res.Digest, got.keys, got.digest, opts.DataDir)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fault.Point(fault.ConvertBeforeSwap)
	if err := work.Replace(filepath.Join(out, "member")); err != nil {
		return nil, err
	}
	log.Info("v2 store converted", "keys", res.Keys, "dirs", res.Dirs, "expired_skipped", res.Expired,
		"ttl_keys", res.TTLKeys, "ttl_dir_keys", res.DefaultTTLs, "leases", res.Leases,
		"max_revision", res.MaxRevision, "digest", res.Digest, "snapshot_index", res.SnapshotIndex,
		"applied_index", res.AppliedIndex, "load_ms", loadedAt.Milliseconds(), "duration_ms", time.Since(start).Milliseconds())
	return res, nil
}

// refuseV3Keys stops a conversion that would replace v3 keys written next to the
// v2 store (an etcd 3.x serving etcd2 data also serves the v3 API).
func refuseV3Keys(dataDir string) error {
	path := datadir.BackendPath(dataDir)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	db, err := v3backend.OpenReadOnly(path)
	if err != nil {
		return err
	}
	defer db.Close()
	n := 0
	_ = db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(schema.Key.Name()); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	})
	if n > 0 {
		return fmt.Errorf("the etcd2 data dir %s also holds %d v3 key revisions in %s: converting the v2 store would replace them; migrate the v3 keys out first or set version.txt to etcd3 if the v2 store is unused", dataDir, n, path)
	}
	return nil
}

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
	for _, b := range []backend.Bucket{schema.Key, schema.Meta, schema.Lease, schema.Cluster} {
		tx.UnsafeCreateBucket(b)
	}
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

// writeBackend walks the v2 keys and writes each into the bolt backend at path
// (created if missing) with etcd's own schema and revision encoding, plus the
// leases TTL keys need. It fills res, including the digest. It drops loaded.Store
// once the keys are listed, so the store's memory can go before the writes.
func writeBackend(ctx context.Context, lg *zap.Logger, path string, loaded *LoadResult, opts Options, res *Result) error {
	ev, err := loaded.Store.Get(keysPrefix, true, false)
	var verr *v2error.Error
	if errors.As(err, &verr) && verr.ErrorCode == v2error.EcodeKeyNotFound {
		ev, err = &v2store.Event{Node: &v2store.NodeExtern{Key: keysPrefix, Dir: true}}, nil
	}
	if err != nil {
		return fmt.Errorf("read v2 keys: %w", err)
	}
	loaded.Store = nil
	now := opts.Now()
	ttlDir := strings.TrimSuffix(opts.TTLKeysDir, "/") + "/"
	leases := map[int64]int64{} // TTL seconds -> lease ID

	// Collect the live keys, then write them in revision order: bolt appends
	// sequentially (fast, and a compact file) instead of inserting at random.
	type item struct {
		key          string
		value        *string
		created, mod uint64
		ttl          int64
	}
	var items []item
	var walk func(n *v2store.NodeExtern)
	walk = func(n *v2store.NodeExtern) {
		if n.Dir {
			if n.Key != keysPrefix {
				res.Dirs++
			}
			for _, c := range n.Nodes {
				walk(c)
			}
			return
		}
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
		items = append(items, item{key: n.Key, value: n.Value, created: n.CreatedIndex, mod: n.ModifiedIndex, ttl: ttl})
	}
	walk(ev.Node)
	ev = nil // the node tree: the items hold what the writes need
	sort.Slice(items, func(i, j int) bool { return items[i].mod < items[j].mod })
	for i := 1; i < len(items); i++ {
		if items[i].mod == items[i-1].mod {
			return fmt.Errorf("v2 keys %q and %q share modifiedIndex %d: the v2 store is inconsistent", items[i-1].key, items[i].key, items[i].mod)
		}
	}
	be := backend.NewDefaultBackend(lg, path)
	tx := be.BatchTx()
	tx.LockOutsideApply()
	for _, b := range []backend.Bucket{schema.Key, schema.Meta, schema.Lease, schema.Cluster} {
		tx.UnsafeCreateBucket(b)
	}
	sums := make([]revHash, 0, len(items))
	revBytes := mvcc.NewRevBytes()
	var werr error
	var value []byte
	for i, it := range items {
		kv := mvccpb.KeyValue{
			Key: []byte(strings.TrimPrefix(it.key, keysPrefix)), CreateRevision: int64(it.created),
			ModRevision: int64(it.mod), Version: 1,
		}
		if value, werr = loaded.value(it.mod, it.value, value); werr != nil {
			break
		}
		kv.Value = value
		if it.ttl > 0 {
			id, ok := leases[it.ttl]
			if !ok {
				id = leaseIDBase + int64(len(leases)) + 1
				leases[it.ttl] = id
				schema.MustUnsafePutLease(tx, &leasepb.Lease{ID: id, TTL: it.ttl})
			}
			kv.Lease = id
		}
		val, err := kv.Marshal()
		if err != nil {
			werr = fmt.Errorf("encode key %q: %w", kv.Key, err)
			break
		}
		revBytes = mvcc.RevToBytes(mvcc.Revision{Main: kv.ModRevision}, revBytes)
		tx.UnsafeSeqPut(schema.Key, revBytes, val)
		if i == len(items)/2 {
			fault.Point(fault.ConvertMidWrite)
		}
		sums = append(sums, revHash{rev: kv.ModRevision, sum: keyspace.RecordSum(&kv, it.ttl)})
		if (i+1)%batchKeys == 0 {
			tx.Unlock()
			be.ForceCommit()
			tx.LockOutsideApply()
			if werr = ctx.Err(); werr != nil {
				break
			}
		}
	}
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
	res.Leases = len(leases)
	res.Digest = digestOf(sums)
	return nil
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
