package steprun

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/go-version"

	"github.com/etcd-migrate/etcd-migrate/pkg/etcdproc"
	"github.com/etcd-migrate/etcd-migrate/pkg/fault"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// EtcdV2 runs etcd-<v> on etcd2 data as an etcd2-mode step does: until GET
// /version reports the cluster version at v's minor and the newest v2 snapshot on
// disk records it; then stops it gracefully. It uses only the v2 API and the
// files (etcd 2.x has no v3 API) and writes no key: the v2 store's index, which
// becomes the revisions when the data converts, does not move.
func (e *Env) EtcdV2(ctx context.Context, s Step, v *version.Version) (timings []any, err error) {
	log := e.Logger.With("step", string(s.Kind()), "etcd", v.String())
	start := time.Now()
	fault.Point(fault.StepBeforeStart)
	cfg := e.procConfig(v, true, log)
	// etcd 2.x saves a snapshot of the whole v2 store (about a second per 100 MB)
	// every --snapshot-count entries, its leader's SYNC entries (every 500 ms)
	// included: with 1 it would do little else on a large store. 100 quorum reads
	// trigger one when wanted.
	cfg.SnapshotCount = etcdproc.V2SnapshotCount
	p, err := etcdproc.Start(cfg)
	if err != nil {
		return nil, err
	}
	defer stopIfFailed(p, log, &err)
	ctx, cancel := context.WithTimeout(ctx, e.ReadyTimeout)
	defer cancel()
	if _, err := p.WaitMinor(ctx); err != nil {
		return nil, fmt.Errorf("step %s: %w", s, err)
	}
	fault.Point(fault.StepAfterStart)
	minor := versionfile.MinorString(v)
	vers, err := p.WaitMinor(ctx, minor)
	if err != nil {
		return nil, fmt.Errorf("step %s: %w", s, err)
	}
	versionsAt := time.Since(start)
	snapIdx, err := p.SaveSnapshotV2(ctx, minor)
	if err != nil {
		return nil, fmt.Errorf("step %s: %w", s, err)
	}
	stopFrom := time.Since(start)
	if err := e.stop(p, s, log); err != nil {
		return nil, err
	}
	return []any{"etcd", v.String(), "cluster_version", vers.Cluster, "snapshot_index", snapIdx,
		"versions_ms", versionsAt.Milliseconds(), "snapshot_ms", stopFrom.Milliseconds(),
		"stop_ms", (time.Since(start) - stopFrom).Milliseconds()}, nil
}
