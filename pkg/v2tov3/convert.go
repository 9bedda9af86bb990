package v2tov3

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"os"
	"path/filepath"
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

	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// WorkDirName is the conversion's scratch dir inside the data dir: on the same
// filesystem, so the final swap is two renames.
const WorkDirName = versionfile.ConversionWorkDir

// leaseIDBase marks the leases the conversion creates ("migr" in the high bytes);
// etcd's own lease IDs come from a member-ID-based generator and do not collide.
const leaseIDBase = int64(0x6d69677200000000)

// Options configures one conversion.
type Options struct {
	DataDir string
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

// record is one v3 key to write.
type record struct {
	kv  mvccpb.KeyValue
	ttl int64 // lease TTL in seconds, 0 for none
}

// Convert turns the etcd2 data dir into etcd3 data in place. The original member
// dir is moved aside only after the new one is complete and verified; the caller
// records version.txt and then calls Cleanup.
func Convert(opts Options) (*Result, error) {
	lg := zap.NewNop()
	log := opts.Logger
	start := time.Now()
	if err := refuseV3Keys(opts.DataDir); err != nil {
		return nil, err
	}
	work := filepath.Join(opts.DataDir, WorkDirName)
	if err := os.RemoveAll(work); err != nil {
		return nil, fmt.Errorf("clear %s: %w", work, err)
	}
	if err := os.Mkdir(work, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", work, err)
	}
	swapped := false
	defer func() {
		if !swapped {
			// The original member dir was not touched; drop the scratch copy.
			_ = os.RemoveAll(work)
		}
	}()
	loaded, err := LoadStore(lg, opts.DataDir)
	if err != nil {
		return nil, err
	}
	res := &Result{SnapshotIndex: loaded.SnapshotIndex, AppliedIndex: loaded.AppliedIndex}
	recs, leases, err := collect(loaded.Store, opts, res)
	if err != nil {
		return nil, err
	}
	loaded = nil // the v2 store is no longer needed
	res.Digest = digest(recs)
	loadedAt := time.Since(start)

	dbPath := filepath.Join(work, "db")
	if err := writeBackend(lg, dbPath, recs, leases, opts.ClusterVersion); err != nil {
		return nil, err
	}
	out := filepath.Join(work, "out")
	err = snapshot.NewV3(lg).Restore(snapshot.RestoreConfig{
		SnapshotPath:        dbPath,
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
	if err := os.Remove(dbPath); err != nil {
		return nil, err
	}
	got, err := backendDigest(versionfile.BackendPath(out))
	if err != nil {
		return nil, err
	}
	if got.digest != res.Digest || got.keys != res.Keys {
		return nil, fmt.Errorf("verification failed: the v2 keyspace (%d keys, digest %s) and the converted v3 keyspace (%d keys, digest %s) differ; the etcd2 data dir %s is unchanged", res.Keys, res.Digest, got.keys, got.digest, opts.DataDir)
	}
	if err := swap(opts.DataDir, work); err != nil {
		return nil, err
	}
	swapped = true
	log.Info("v2 store converted", "keys", res.Keys, "dirs", res.Dirs, "expired_skipped", res.Expired,
		"ttl_keys", res.TTLKeys, "ttl_dir_keys", res.DefaultTTLs, "leases", res.Leases,
		"max_revision", res.MaxRevision, "digest", res.Digest, "snapshot_index", res.SnapshotIndex,
		"applied_index", res.AppliedIndex, "load_ms", loadedAt.Milliseconds(), "duration_ms", time.Since(start).Milliseconds())
	return res, nil
}

// refuseV3Keys stops a conversion that would replace v3 keys written next to the
// v2 store (an etcd 3.x serving etcd2 data also serves the v3 API).
func refuseV3Keys(dataDir string) error {
	path := versionfile.BackendPath(dataDir)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
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

// collect turns the v2 keys into v3 records sorted by revision, and the leases
// (TTL in seconds -> lease ID) they need.
func collect(st v2store.Store, opts Options, res *Result) ([]record, map[int64]int64, error) {
	ev, err := st.Get(keysPrefix, true, true)
	var verr *v2error.Error
	if errors.As(err, &verr) && verr.ErrorCode == v2error.EcodeKeyNotFound {
		return nil, map[int64]int64{}, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read v2 keys: %w", err)
	}
	now := opts.Now()
	ttlDir := strings.TrimSuffix(opts.TTLKeysDir, "/") + "/"
	leases := map[int64]int64{}
	leaseFor := func(ttl int64) int64 {
		id, ok := leases[ttl]
		if !ok {
			id = leaseIDBase + int64(len(leases)) + 1
			leases[ttl] = id
		}
		return id
	}
	var recs []record
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
		key := strings.TrimPrefix(n.Key, keysPrefix)
		r := record{kv: mvccpb.KeyValue{
			Key: []byte(key), CreateRevision: int64(n.CreatedIndex), ModRevision: int64(n.ModifiedIndex), Version: 1,
		}}
		if n.Value != nil {
			r.kv.Value = []byte(*n.Value)
		}
		switch {
		case n.Expiration != nil:
			remaining := n.Expiration.Sub(now)
			if remaining <= 0 {
				res.Expired++ // etcd would have deleted it at its next SYNC
				return
			}
			// Whole seconds, rounded up like the v2 API reports TTLs.
			r.ttl = int64((remaining + time.Second - 1) / time.Second)
			res.TTLKeys++
		case opts.TTLKeysDir != "" && strings.HasPrefix(key, ttlDir):
			r.ttl = int64(opts.DefaultTTL / time.Second)
			res.DefaultTTLs++
		}
		if r.ttl > 0 {
			r.kv.Lease = leaseFor(r.ttl)
		}
		recs = append(recs, r)
	}
	walk(ev.Node)
	sort.Slice(recs, func(i, j int) bool { return recs[i].kv.ModRevision < recs[j].kv.ModRevision })
	for i := 1; i < len(recs); i++ {
		if recs[i].kv.ModRevision == recs[i-1].kv.ModRevision {
			return nil, nil, fmt.Errorf("v2 keys %q and %q share modifiedIndex %d: the v2 store is inconsistent", recs[i-1].kv.Key, recs[i].kv.Key, recs[i].kv.ModRevision)
		}
	}
	res.Keys = len(recs)
	res.Leases = len(leases)
	if len(recs) > 0 {
		res.MaxRevision = recs[len(recs)-1].kv.ModRevision
	}
	return recs, leases, nil
}

// writeBackend writes the records and leases into a new bolt backend with etcd's
// own schema and revision encoding.
func writeBackend(lg *zap.Logger, path string, recs []record, leases map[int64]int64, clusterVersion string) error {
	be := backend.NewDefaultBackend(lg, path)
	tx := be.BatchTx()
	tx.LockOutsideApply()
	for _, b := range []backend.Bucket{schema.Key, schema.Meta, schema.Lease, schema.Cluster} {
		tx.UnsafeCreateBucket(b)
	}
	if clusterVersion != "" {
		tx.UnsafePut(schema.Cluster, schema.ClusterClusterVersionKeyName, []byte(clusterVersion))
	}
	for ttl, id := range leases {
		schema.MustUnsafePutLease(tx, &leasepb.Lease{ID: id, TTL: ttl})
	}
	revBytes := mvcc.NewRevBytes()
	for i := range recs {
		revBytes = mvcc.RevToBytes(mvcc.Revision{Main: recs[i].kv.ModRevision}, revBytes)
		val, err := recs[i].kv.Marshal()
		if err != nil {
			tx.Unlock()
			be.Close()
			return fmt.Errorf("encode key %q: %w", recs[i].kv.Key, err)
		}
		tx.UnsafeSeqPut(schema.Key, revBytes, val)
	}
	tx.Unlock()
	be.ForceCommit()
	if err := be.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}

// digest hashes the records in revision order: key, value, create and mod revision,
// version and lease TTL.
func digest(recs []record) string {
	h := sha256.New()
	for i := range recs {
		hashKV(h, &recs[i].kv, recs[i].ttl)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func hashKV(h hash.Hash, kv *mvccpb.KeyValue, ttl int64) {
	var n [8]byte
	for _, f := range [][]byte{kv.Key, kv.Value} {
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write(f)
	}
	for _, v := range []int64{kv.CreateRevision, kv.ModRevision, kv.Version, ttl} {
		binary.BigEndian.PutUint64(n[:], uint64(v))
		h.Write(n[:])
	}
}

type backendSum struct {
	keys   int
	digest string
}

// backendDigest reads a backend back (read-only) and hashes it like digest: every
// key revision in revision order with its lease's TTL.
func backendDigest(path string) (backendSum, error) {
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true})
	if err != nil {
		return backendSum{}, fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	var sum backendSum
	err = db.View(func(tx *bolt.Tx) error {
		ttls := map[int64]int64{}
		if lb := tx.Bucket(schema.Lease.Name()); lb != nil {
			if err := lb.ForEach(func(_, v []byte) error {
				var l leasepb.Lease
				if err := l.Unmarshal(v); err != nil {
					return err
				}
				ttls[l.ID] = l.TTL
				return nil
			}); err != nil {
				return err
			}
		}
		h := sha256.New()
		kb := tx.Bucket(schema.Key.Name())
		if kb == nil {
			return fmt.Errorf("no key bucket")
		}
		err := kb.ForEach(func(_, v []byte) error {
			var kv mvccpb.KeyValue
			if err := kv.Unmarshal(v); err != nil {
				return err
			}
			ttl := int64(0)
			if kv.Lease != 0 {
				t, ok := ttls[kv.Lease]
				if !ok {
					return fmt.Errorf("key %q names lease %x, which does not exist", kv.Key, kv.Lease)
				}
				ttl = t
			}
			hashKV(h, &kv, ttl)
			sum.keys++
			return nil
		})
		sum.digest = hex.EncodeToString(h.Sum(nil))
		return err
	})
	if err != nil {
		return backendSum{}, fmt.Errorf("read back %s: %w", path, err)
	}
	return sum, nil
}
