package steprun

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/hashicorp/go-version"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-migrate/etcd-migrate/pkg/datadir"
	"github.com/etcd-migrate/etcd-migrate/pkg/durable"
	"github.com/etcd-migrate/etcd-migrate/pkg/etcdproc"
	"github.com/etcd-migrate/etcd-migrate/pkg/etcdversion"
	"github.com/etcd-migrate/etcd-migrate/pkg/fault"
	"github.com/etcd-migrate/etcd-migrate/pkg/lockstep"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// EtcdRun says how a step runs one etcd on the data.
type EtcdRun struct {
	// EnableV2 serves the v2 API (etcd2 data, or v2 content to delete).
	EnableV2 bool
	// RaiseClusterVersion: the run waits for the cluster version to move up, which
	// a downgrade job holds down. A lone member's run cancels one left in the data;
	// a member of several refuses to, since it may be the operator's.
	RaiseClusterVersion bool
	// Point is where the run's barrier is in the walk (members of several only).
	Point lockstep.Point
	// AfterReady, when set, runs once etcd is ready, before the snapshot.
	AfterReady func(context.Context, *etcdproc.Process, *clientv3.Client) error
	// Accept lists the minors the cluster may be at for etcd to count as started
	// (default: the etcd's own minor).
	Accept []string
	// NoDowngradeMonitor keeps etcd's downgrade monitor from running (the run
	// ends the job itself).
	NoDowngradeMonitor bool
}

// Etcd runs etcd-<v> until the cluster (3.6+: and storage) version is at its minor,
// a write has committed and a snapshot covers everything applied so far; then stops
// it gracefully. It returns the run's timings as log attributes.
func (e *Env) Etcd(ctx context.Context, s Step, v *version.Version, r EtcdRun) (timings []any, err error) {
	log := e.Logger.With("step", string(s.Kind()), "etcd", v.String())
	start := time.Now()
	fault.Point(fault.StepBeforeStart)
	// The offline digest just freed its maps: hand the memory back before etcd
	// maps the db, so that migrate and its etcd together stay near the etcd alone.
	debug.FreeOSMemory()
	cfg := e.procConfig(v, r.EnableV2, log)
	if r.NoDowngradeMonitor {
		cfg.DowngradeCheckTime = 24 * time.Hour
	}
	p, err := etcdproc.Start(cfg)
	if err != nil {
		return nil, err
	}
	defer stopIfFailed(p, log, &err)
	timeout := e.ReadyTimeout
	if e.Cluster != nil {
		// The waits for the other members have a bound of their own.
		timeout += 2 * e.Cluster.Timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t, cli, err := e.runUntilSnapshot(ctx, p, v, r, log, start)
	if cli != nil {
		defer cli.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("step %s: %w", s, err)
	}
	barrierFrom := time.Since(start)
	if e.Cluster != nil {
		id, err := p.MemberID(ctx, cli)
		if err == nil {
			err = e.Cluster.Arrive(ctx, cli, id, r.Point)
		}
		if err != nil {
			return nil, fmt.Errorf("step %s: %w", s, err)
		}
	}
	stopFrom := time.Since(start)
	if err := e.stop(p, s, log); err != nil {
		return nil, err
	}
	return append(t, "barrier_ms", (stopFrom - barrierFrom).Milliseconds(), "stop_ms", (time.Since(start) - stopFrom).Milliseconds()), nil
}

// stopIfFailed stops a step's etcd when the step failed (*err set): nothing is left
// running; the data stays at the last recorded state plus whatever this etcd
// durably applied, which a rerun redoes.
func stopIfFailed(p *etcdproc.Process, log *slog.Logger, err *error) {
	if *err == nil {
		return
	}
	if _, serr := p.Stop(); serr != nil {
		log.Warn("stop after failure", "err", serr)
	}
}

// stop stops a step's etcd that has done its work (snapshot saved): gracefully,
// killed after the stop timeout, which costs nothing durable.
func (e *Env) stop(p *etcdproc.Process, s Step, log *slog.Logger) error {
	fault.Point(fault.StepBeforeStop)
	killed, err := p.Stop()
	if err != nil {
		return fmt.Errorf("step %s: %w", s, err)
	}
	// etcd fsyncs its files but not every name it creates (a new snapshot file in
	// member/snap): without this, a power cut after version.txt records the step
	// can leave etcd to recover from an older snapshot, one from before a downgrade
	// that the older etcd refuses.
	for _, dir := range []string{filepath.Join(e.DataDir, "member"), e.WALDir} {
		if dir == "" {
			continue
		}
		if err := durable.SyncTree(dir); err != nil {
			return fmt.Errorf("step %s: make what etcd %s wrote durable: %w", s, p.Version(), err)
		}
	}
	fault.Point(fault.StepAfterStop)
	if killed {
		log.Warn("etcd did not stop within the stop timeout and was killed; its data is crash-safe and the snapshot was already saved", "stop_timeout", e.StopTimeout)
	}
	return nil
}

// runUntilSnapshot waits for the started etcd to answer, for the cluster version
// (3.6+: and storage version) at an accepted minor and for a committed write; runs
// AfterReady; and has a snapshot saved past all of it. It returns the timings and
// the client it made (the caller closes it).
func (e *Env) runUntilSnapshot(ctx context.Context, p *etcdproc.Process, v *version.Version, r EtcdRun, log *slog.Logger, start time.Time) ([]any, *clientv3.Client, error) {
	accept := r.Accept
	if len(accept) == 0 {
		accept = []string{versionfile.MinorString(v)}
	}
	// Connect once etcd answers: a gRPC dial to a port nobody listens on yet backs
	// off for a second.
	if _, err := p.WaitMinor(ctx); err != nil {
		return nil, nil, err
	}
	fault.Point(fault.StepAfterStart)
	cli, err := p.Client()
	if err != nil {
		return nil, nil, fmt.Errorf("client: %w", err)
	}
	if r.RaiseClusterVersion && etcdversion.For(v).DowngradeStatus {
		if err := e.leftoverDowngrade(ctx, p, cli, log); err != nil {
			return nil, cli, err
		}
	}
	vers, err := e.waitMinor(ctx, p, accept)
	if err != nil {
		return nil, cli, err
	}
	versionsAt := time.Since(start)
	if err := p.WaitWrite(ctx, cli); err != nil {
		return nil, cli, err
	}
	readyAt := time.Since(start)
	if r.AfterReady != nil {
		if err := r.AfterReady(ctx, p, cli); err != nil {
			return nil, cli, fmt.Errorf("etcd %s: %w", v, err)
		}
	}
	snapIdx, err := p.SaveSnapshot(ctx, cli)
	if err != nil {
		return nil, cli, err
	}
	return []any{"etcd", v.String(), "cluster_version", vers.Cluster, "storage_version", vers.Storage,
		"snapshot_index", snapIdx, "versions_ms", versionsAt.Milliseconds(), "ready_ms", readyAt.Milliseconds(),
		"snapshot_ms", time.Since(start).Milliseconds()}, cli, nil
}

// leftoverDowngrade deals with a downgrade job that would hold the cluster version
// down: a lone member cancels it; a member of several refuses to go on.
func (e *Env) leftoverDowngrade(ctx context.Context, p *etcdproc.Process, c *clientv3.Client, log *slog.Logger) error {
	if err := p.WaitWrite(ctx, c); err != nil {
		return err
	}
	if e.Cluster != nil {
		job, err := etcdproc.DowngradeJob(ctx, c, p.URL())
		if err == nil && job != "" {
			return fmt.Errorf("the cluster has a downgrade job to %s enabled, which keeps the cluster version from moving up: finish the downgrade, or cancel it (etcdctl downgrade cancel); migrate does not cancel a job on a cluster of several members", job)
		}
		return nil
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
		Member:            e.Member,
		EnableV2:          enableV2,
		Binary:            EtcdBinary(e.BinDir, v),
		Version:           v,
		DataDir:           e.DataDir,
		WALDir:            e.WALDir,
		SnapshotCount:     1,
		QuotaBackendBytes: StepQuota(e.DataDir),
		// Lets etcd end a finished downgrade job within a poll or two.
		DowngradeCheckTime: 50 * time.Millisecond,
		StopTimeout:        e.StopTimeout,
		Logger:             log,
	}
}

// waitMinor waits for the cluster (3.6+: and storage) version to be at one of the
// accepted minors. For a member of several that needs every member to run that
// minor: the wait is bounded by the members' timeout and says what each reports.
func (e *Env) waitMinor(ctx context.Context, p *etcdproc.Process, accept []string) (etcdproc.ServerVersions, error) {
	if e.Cluster == nil {
		return p.WaitMinor(ctx, accept...)
	}
	wctx, cancel := context.WithTimeout(ctx, e.Cluster.Timeout)
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(e.Cluster.ReportEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				e.Logger.Info("waiting for the cluster version: every member must run this minor", "want", accept, "members", e.Cluster.Report())
			}
		}
	}()
	v, err := p.WaitMinor(wctx, accept...)
	if err != nil && ctx.Err() == nil && wctx.Err() != nil {
		lagging, report := e.Cluster.Lagging(versionfile.MinorString(p.Version()))
		return v, fmt.Errorf("members %s do not run etcd %s: the cluster version did not reach %s within --members-timeout=%s (%s); start their migration to the same target, or rerun this member once they run",
			lagging, versionfile.MinorString(p.Version()), strings.Join(accept, " or "), e.Cluster.Timeout, report)
	}
	return v, err
}

// StepQuota is a step etcd's --quota-backend-bytes: etcd's recommended maximum of
// 8 GiB, or the db's size and 1 GiB more if that is larger. With etcd's 2 GiB
// default, a db past the quota makes the step's first write raise a NOSPACE alarm
// that is stored in the data and leaves the cluster read-only after the
// migration. The quota is not stored: the exec'd etcd runs with the operator's.
func StepQuota(dataDir string) int64 {
	const floor = 8 << 30
	fi, err := os.Stat(datadir.BackendPath(dataDir))
	if err != nil {
		return floor
	}
	return max(floor, fi.Size()+1<<30)
}
