package v2tov3

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"

	"github.com/etcd-migrate/etcd-migrate/pkg/datadir"
	"github.com/etcd-migrate/etcd-migrate/pkg/fault"
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
	if err := memberdir.Fit(out, opts.Target.Version); err != nil {
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
		if v3backend.HasKeyRevisions(tx) { // counted only to say how many
			n = v3backend.KeyRevisions(tx)
		}
		return nil
	})
	if n > 0 {
		return fmt.Errorf("the etcd2 data dir %s also holds %d v3 key revisions in %s: converting the v2 store would replace them; migrate the v3 keys out first or set version.txt to etcd3 if the v2 store is unused", dataDir, n, path)
	}
	return nil
}
