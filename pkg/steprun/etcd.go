package steprun

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/go-version"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-migrate/etcd-migrate/pkg/etcdproc"
	"github.com/etcd-migrate/etcd-migrate/pkg/fault"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// EtcdRun says how a step runs one etcd on the data.
type EtcdRun struct {
	// EnableV2 serves the v2 API (etcd2 data, or v2 content to delete).
	EnableV2 bool
	// CancelLeftoverDowngrade: a downgrade job left in the data would hold the
	// cluster version down; an upgrade cancels it before waiting for the version.
	CancelLeftoverDowngrade bool
	// AfterReady, when set, runs once etcd is ready, before the snapshot.
	AfterReady func(context.Context, *etcdproc.Process, *clientv3.Client) error
	// Accept lists the minors the cluster may be at for etcd to count as started
	// (default: the etcd's own minor).
	Accept []string
}

// Etcd runs etcd-<v> until the cluster (3.6+: and storage) version is at its minor,
// a write has committed and a snapshot covers everything applied so far; then stops
// it gracefully. It returns the run's timings as log attributes.
func (e *Env) Etcd(ctx context.Context, s Step, v *version.Version, r EtcdRun) (timings []any, err error) {
	accept := r.Accept
	if len(accept) == 0 {
		accept = []string{versionfile.MinorString(v)}
	}
	log := e.Logger.With("step", string(s.Kind()), "etcd", v.String())
	start := time.Now()
	fault.Point(fault.StepBeforeStart)
	p, err := etcdproc.Start(e.procConfig(v, r.EnableV2, log))
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			// Leave nothing running; the data stays at the last recorded state
			// plus whatever this etcd durably applied, which a rerun redoes.
			if _, serr := p.Stop(); serr != nil {
				log.Warn("stop after failure", "err", serr)
			}
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, e.ReadyTimeout)
	defer cancel()
	stepErr := func(err error) error { return fmt.Errorf("step %s: %w", s, err) }

	// Connect once etcd answers: a gRPC dial to a port nobody listens on yet backs
	// off for a second.
	if _, err := p.WaitMinor(ctx); err != nil {
		return nil, stepErr(err)
	}
	fault.Point(fault.StepAfterStart)
	c, err := p.Client()
	if err != nil {
		return nil, fmt.Errorf("step %s: client: %w", s, err)
	}
	defer c.Close()
	if r.CancelLeftoverDowngrade {
		if err := e.cancelLeftoverDowngrade(ctx, p, c, log); err != nil {
			return nil, stepErr(err)
		}
	}
	vers, err := p.WaitMinor(ctx, accept...)
	if err != nil {
		return nil, stepErr(err)
	}
	versionsAt := time.Since(start)
	if err := p.WaitWrite(ctx, c); err != nil {
		return nil, stepErr(err)
	}
	readyAt := time.Since(start)
	if r.AfterReady != nil {
		if err := r.AfterReady(ctx, p, c); err != nil {
			return nil, fmt.Errorf("step %s: etcd %s: %w", s, v, err)
		}
	}
	snapIdx, err := p.SaveSnapshot(ctx, c)
	if err != nil {
		return nil, stepErr(err)
	}
	snapAt := time.Since(start)
	fault.Point(fault.StepBeforeStop)
	killed, err := p.Stop()
	if err != nil {
		return nil, stepErr(err)
	}
	fault.Point(fault.StepAfterStop)
	if killed {
		log.Warn("etcd did not stop within the stop timeout and was killed; its data is crash-safe and the snapshot was already saved", "stop_timeout", e.StopTimeout)
	}
	return []any{"etcd", v.String(), "cluster_version", vers.Cluster, "storage_version", vers.Storage,
		"snapshot_index", snapIdx, "versions_ms", versionsAt.Milliseconds(), "ready_ms", readyAt.Milliseconds(),
		"snapshot_ms", snapAt.Milliseconds(), "stop_ms", (time.Since(start) - snapAt).Milliseconds()}, nil
}

func (e *Env) cancelLeftoverDowngrade(ctx context.Context, p *etcdproc.Process, c *clientv3.Client, log *slog.Logger) error {
	if err := p.WaitWrite(ctx, c); err != nil {
		return err
	}
	cancelled, err := etcdproc.CancelLeftoverDowngrade(ctx, c, p.URL())
	if err != nil {
		return err
	}
	if cancelled {
		log.Warn("cancelled a downgrade job left in the data, which kept the cluster version from moving up")
	}
	return nil
}

func (e *Env) procConfig(v *version.Version, enableV2 bool, log *slog.Logger) etcdproc.Config {
	return etcdproc.Config{
		Member:        e.Member,
		EnableV2:      enableV2,
		Binary:        EtcdBinary(e.BinDir, v),
		Version:       v,
		DataDir:       e.DataDir,
		WALDir:        e.WALDir,
		SnapshotCount: 1,
		// Lets etcd end a finished downgrade job within a poll or two.
		DowngradeCheckTime: 50 * time.Millisecond,
		StopTimeout:        e.StopTimeout,
		Logger:             log,
	}
}
