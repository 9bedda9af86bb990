package rollback

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.etcd.io/etcd/server/v3/etcdserver/api/snap"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v2store"
	"go.etcd.io/etcd/server/v3/storage/backend"
	"go.etcd.io/etcd/server/v3/storage/schema"
	"go.uber.org/zap"

	"github.com/etcd-migrate/etcd-migrate/pkg/datadir"
	"github.com/etcd-migrate/etcd-migrate/pkg/fault"
	"github.com/etcd-migrate/etcd-migrate/pkg/memberdir"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// Options configures one etcd3 -> etcd2 conversion.
type Options struct {
	DataDir string
	// Target is what version.txt will record (e.g. 3.4.13/etcd2).
	Target         versionfile.Pair
	Name           string
	PeerURLs       []string
	InitialCluster string
	// Prefix is the Kubernetes key prefix whose values must be JSON.
	Prefix string
	Now    func() time.Time
	Logger *slog.Logger
}

// Result reports a conversion.
type Result struct {
	Keys, Leased int
	CurrentIndex uint64
}

// node is a v2 store node as the store's snapshot JSON spells it (v2store.node's
// exported fields).
type node struct {
	Path          string
	CreatedIndex  uint64
	ModifiedIndex uint64
	ExpireTime    time.Time
	Value         string
	Children      map[string]*node
}

const keysDir = "/1" // the v2 store's user keys namespace

// Convert replaces the etcd3 member dir of opts.DataDir with a fresh one whose v2
// store holds every live v3 key (createdIndex = create_revision, modifiedIndex =
// mod_revision, a TTL of the lease's remaining TTL) and whose v3 keyspace is empty.
// The membership comes from config, as in a snapshot restore.
func Convert(opts Options) (*Result, error) {
	lg := zap.NewNop()
	keys, err := ReadKeyspace(opts.DataDir)
	if err != nil {
		return nil, err
	}
	if err := Check(keys, opts.Prefix); err != nil {
		return nil, err
	}
	work, err := memberdir.Begin(opts.DataDir, "etcd2", opts.Target)
	if err != nil {
		return nil, err
	}
	defer work.AbortUnlessReplaced()
	// A fresh member dir around an empty backend: new WAL, a v2 snapshot holding the
	// membership, the consistent index set; etcdutl's restore writes exactly that.
	dbPath := work.Path("empty.db")
	be := backend.NewDefaultBackend(lg, dbPath)
	tx := be.BatchTx()
	tx.LockOutsideApply()
	for _, b := range []backend.Bucket{schema.Key, schema.Meta, schema.Lease, schema.Cluster} {
		tx.UnsafeCreateBucket(b)
	}
	tx.Unlock()
	be.ForceCommit()
	if err := be.Close(); err != nil {
		return nil, err
	}
	out := work.Path("out")
	if err := snapshot.NewV3(lg).Restore(snapshot.RestoreConfig{
		SnapshotPath: dbPath, Name: opts.Name, OutputDataDir: out, PeerURLs: opts.PeerURLs,
		InitialCluster: opts.InitialCluster, InitialClusterToken: "etcd-cluster", SkipHashCheck: true,
	}); err != nil {
		return nil, fmt.Errorf("write a fresh member dir in %s: %w", out, err)
	}
	snaps, _ := filepath.Glob(filepath.Join(datadir.SnapDir(out), "*.snap"))
	if len(snaps) != 1 {
		return nil, fmt.Errorf("restore into %s wrote %d v2 snapshots, want 1", out, len(snaps))
	}
	raftSnap, err := snap.Read(lg, snaps[0])
	if err != nil {
		return nil, err
	}
	res := &Result{Keys: len(keys)}
	data, err := withKeys(raftSnap.Data, keys, opts.Now(), res)
	if err != nil {
		return nil, err
	}
	if err := verify(data, keys); err != nil {
		return nil, fmt.Errorf("verification of the v2 store failed, %s is unchanged: %w", opts.DataDir, err)
	}
	if err := os.Remove(snaps[0]); err != nil {
		return nil, err
	}
	raftSnap.Data = data
	fault.Point(fault.RollbackMidWrite)
	if err := snap.New(lg, datadir.SnapDir(out)).SaveSnap(*raftSnap); err != nil {
		return nil, fmt.Errorf("save the v2 snapshot in %s: %w", out, err)
	}
	if err := memberdir.Fit(out, opts.Target.Version); err != nil {
		return nil, err
	}
	fault.Point(fault.RollbackBeforeSwap)
	if err := work.Replace(filepath.Join(out, "member")); err != nil {
		return nil, err
	}
	opts.Logger.Info("v3 keyspace converted to a v2 store", "keys", res.Keys, "leased", res.Leased, "current_index", res.CurrentIndex)
	return res, nil
}

// withKeys adds the keys under /1 of the store JSON and raises its CurrentIndex to
// at least every key's index.
func withKeys(storeJSON []byte, keys []Key, now time.Time, res *Result) ([]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(storeJSON, &doc); err != nil {
		return nil, fmt.Errorf("v2 snapshot: %w", err)
	}
	var root node
	var current uint64
	if err := json.Unmarshal(doc["Root"], &root); err != nil {
		return nil, fmt.Errorf("v2 snapshot root: %w", err)
	}
	if err := json.Unmarshal(doc["CurrentIndex"], &current); err != nil {
		return nil, fmt.Errorf("v2 snapshot index: %w", err)
	}
	if root.Children == nil {
		root.Children = map[string]*node{}
	}
	top := &node{Path: keysDir, Children: map[string]*node{}}
	root.Children["1"] = top
	for _, k := range keys {
		create, mod := uint64(k.KV.CreateRevision), uint64(k.KV.ModRevision)
		dir := top
		segs := strings.Split(string(k.KV.Key)[1:], "/")
		for i, seg := range segs[:len(segs)-1] {
			child, ok := dir.Children[seg]
			if !ok {
				child = &node{Path: keysDir + "/" + strings.Join(segs[:i+1], "/"), CreatedIndex: create, ModifiedIndex: create, Children: map[string]*node{}}
				dir.Children[seg] = child
			}
			// A directory dates from its oldest key.
			if create < child.CreatedIndex {
				child.CreatedIndex, child.ModifiedIndex = create, create
			}
			dir = child
		}
		file := &node{Path: keysDir + string(k.KV.Key), CreatedIndex: create, ModifiedIndex: mod, Value: string(k.KV.Value)}
		if k.TTL > 0 {
			file.ExpireTime = now.Add(time.Duration(k.TTL) * time.Second).UTC()
			res.Leased++
		}
		dir.Children[segs[len(segs)-1]] = file
		current = max(current, mod, create)
	}
	if len(keys) > 0 {
		top.CreatedIndex, top.ModifiedIndex = 1, 1
	}
	res.CurrentIndex = current
	var err error
	if doc["Root"], err = json.Marshal(&root); err != nil {
		return nil, err
	}
	if doc["CurrentIndex"], err = json.Marshal(current); err != nil {
		return nil, err
	}
	return json.Marshal(doc)
}

// verify loads the new store with etcd's own v2store and checks every key.
func verify(data []byte, keys []Key) error {
	st := v2store.New("/0", keysDir)
	if err := st.Recovery(data); err != nil {
		return err
	}
	for _, k := range keys {
		ev, err := st.Get(keysDir+string(k.KV.Key), false, false)
		if err != nil {
			return fmt.Errorf("key %q: %w", k.KV.Key, err)
		}
		n := ev.Node
		if n.Dir || n.Value == nil || *n.Value != string(k.KV.Value) || n.CreatedIndex != uint64(k.KV.CreateRevision) || n.ModifiedIndex != uint64(k.KV.ModRevision) || (k.TTL > 0) != (n.Expiration != nil) {
			return fmt.Errorf("key %q reads back as created=%d modified=%d ttl=%d", k.KV.Key, n.CreatedIndex, n.ModifiedIndex, n.TTL)
		}
	}
	return nil
}
