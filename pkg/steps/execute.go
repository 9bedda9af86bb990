package steps

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-version"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-migrate/etcd-migrate/pkg/diskspace"
	"github.com/etcd-migrate/etcd-migrate/pkg/etcdproc"
	"github.com/etcd-migrate/etcd-migrate/pkg/fault"
	"github.com/etcd-migrate/etcd-migrate/pkg/keyspace"
	"github.com/etcd-migrate/etcd-migrate/pkg/memberdir"
	"github.com/etcd-migrate/etcd-migrate/pkg/rollback"
	"github.com/etcd-migrate/etcd-migrate/pkg/v2tov3"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// StepSpace is about the room a step's etcd needs to write: a new 64 MiB WAL
// segment, allocated up front.
const StepSpace = 64 << 20

// Executor runs planned steps on one data dir.
type Executor struct {
	DataDir string
	// WALDir is the member's separate WAL dir (--wal-dir), "" when the WAL is in
	// the data dir. Only steps that keep the member dir support one.
	WALDir string
	BinDir string
	// Member is the identity and private URLs of the steps' etcd.
	Member etcdproc.Member
	// ReadyTimeout bounds one step's wait for etcd to take over the data.
	ReadyTimeout time.Duration
	// StopTimeout bounds the graceful stop before SIGKILL.
	StopTimeout time.Duration
	// TTLKeysDir: keys below it without a v2 TTL get a lease of DefaultTTL when the
	// v2 store is converted (what the Kubernetes migration did for events).
	TTLKeysDir string
	DefaultTTL time.Duration
	// DataPrefix is the Kubernetes key prefix (values below it must be JSON for
	// etcd2).
	DataPrefix string
	Logger     *slog.Logger

	// DropV2Top, when set, names the top-level v2 keys the hop into 3.6 deletes
	// first (through the v2 API of the data's 3.5 etcd): etcd 3.6+ refuses a v2
	// store with content. Preflight reads and checks them (v2tov3.ReadV2Content).
	DropV2Top []string

	// keys is the keyspace digest of the data as the last step left it.
	keys *keyspace.Digest
}

// CrossesV2Removal reports whether step s moves etcd3 data from a minor that still
// loads the v2 store's content (3.5 and older) to one that refuses it (3.6+).
func CrossesV2Removal(s Step) bool {
	return s.Kind == KindUpgradeMinor && s.From.Storage == versionfile.StorageEtcd3 &&
		versionfile.CompareMinor(s.From.Version, v36) < 0 && versionfile.CompareMinor(s.To.Version, v36) >= 0
}

var v36 = versionfile.MustVersion("3.6.0")

// dropsV2 tells whether etcd v runs in step s to delete the v2 content: the
// data's own (3.5) etcd, before the hop.
func (e *Executor) dropsV2(s Step, v *version.Version) bool {
	return len(e.DropV2Top) > 0 && CrossesV2Removal(s) && v.Equal(s.From.Version)
}

// RewritesMemberDir reports whether step s builds a new member dir (new WAL
// included) and swaps it in: the etcd2 conversion, the rollback to etcd2 and the
// snapshot-restore rollback. The others keep the member dir and its WAL.
func RewritesMemberDir(s Step) bool {
	return s.Kind == KindV2ToV3 || s.Kind == KindRollbackToEtcd2 || (s.Kind == KindRollbackMinor && RollbackBySnapshot(s))
}

// EtcdctlBinary is the path of the bundled etcdctl of version v.
func EtcdctlBinary(binDir string, v *version.Version) string {
	return filepath.Join(binDir, "etcdctl-"+v.String())
}

// EtcdBinary is the path of the bundled etcd of version v.
func EtcdBinary(binDir string, v *version.Version) string {
	return filepath.Join(binDir, "etcd-"+v.String())
}

// BinariesFor lists the binaries a step runs (none for write-version).
func BinariesFor(binDir string, s Step) []string {
	switch s.Kind {
	case KindUpgradeMinor, KindUpgradePatch, KindV2ToV3, KindRollbackToEtcd2:
		return []string{EtcdBinary(binDir, s.To.Version)}
	case KindRollbackMinor:
		bins := []string{EtcdBinary(binDir, s.Via), EtcdBinary(binDir, s.To.Version)}
		if RollbackBySnapshot(s) {
			bins = append(bins, EtcdctlBinary(binDir, s.To.Version))
		}
		return bins
	}
	return nil
}

// Run executes one step and records its result in version.txt only once the data is
// in that state. It logs one line per step, with its timings.
func (e *Executor) Run(ctx context.Context, s Step) error {
	err := e.run(ctx, s)
	if err != nil && !errors.Is(err, context.Canceled) {
		// etcd dies of a full disk with "failed to save snapshot" or the like:
		// say what is wrong.
		if hint := diskspace.Hint(e.DataDir, StepSpace); hint != "" {
			err = fmt.Errorf("%w; %s", err, hint)
		}
	}
	return err
}

func (e *Executor) run(ctx context.Context, s Step) error {
	start := time.Now()
	attrs := []any{"kind", string(s.Kind), "from", s.From.String(), "version_txt", s.To.String()}
	if s.Kind == KindWriteVersion {
		if err := os.MkdirAll(e.DataDir, 0o700); err != nil {
			return fmt.Errorf("create data dir %s: %w", e.DataDir, err)
		}
	}
	// The record is written (not yet renamed) before the step changes anything.
	record, err := versionfile.Prepare(e.DataDir, s.To)
	if err != nil {
		return fmt.Errorf("step %s: %w", s, err)
	}
	defer record.Abort()
	switch s.Kind {
	case KindWriteVersion:
	case KindUpgradeMinor, KindUpgradePatch, KindRollbackMinor:
		// etcd3 -> etcd3: the keys must come out as they went in.
		before, beforeCost, err := e.keysBefore(s)
		if err != nil {
			return err
		}
		var t []any
		if s.Kind != KindRollbackMinor {
			t, err = e.upgrade(ctx, s)
		} else {
			t, err = e.rollbackMinor(ctx, s)
		}
		if err != nil {
			return err
		}
		k, err := e.checkKeys(s, before, beforeCost)
		if err != nil {
			return err
		}
		attrs = append(append(attrs, t...), k...)
	case KindV2ToV3:
		t, err := e.v2ToV3(ctx, s)
		if err != nil {
			return err
		}
		attrs = append(attrs, t...)
	case KindRollbackToEtcd2:
		t, err := e.toEtcd2(ctx, s)
		if err != nil {
			return err
		}
		attrs = append(attrs, t...)
	default:
		return fmt.Errorf("unknown step kind %q", s.Kind)
	}
	if err := record.Commit(); err != nil {
		return err
	}
	// Only now that version.txt records the step may a replaced member dir go.
	if err := memberdir.Cleanup(e.DataDir); err != nil {
		return err
	}
	e.Logger.Info("step done", append(attrs, "duration_ms", time.Since(start).Milliseconds())...)
	return nil
}

// keysBefore is the keyspace digest of the data before step s: the one the previous
// step left (no cost), or read now.
func (e *Executor) keysBefore(s Step) (*keyspace.Digest, time.Duration, error) {
	if e.keys != nil {
		return e.keys, 0, nil
	}
	if s.From.Storage != versionfile.StorageEtcd3 {
		return nil, 0, fmt.Errorf("step %s: no etcd3 keyspace to check", s)
	}
	d, err := keyspace.Of(e.DataDir)
	if err != nil {
		return nil, 0, fmt.Errorf("before step %s: %w", s, err)
	}
	return d, d.Duration, nil
}

// checkKeys compares the keyspace after step s with before; a difference fails the
// step before version.txt records it. beforeCost is what reading before cost.
func (e *Executor) checkKeys(s Step, before *keyspace.Digest, beforeCost time.Duration) ([]any, error) {
	e.keys = nil
	after, err := keyspace.Of(e.DataDir)
	if err != nil {
		return nil, fmt.Errorf("after step %s: %w", s, err)
	}
	expired, err := keyspace.Compare(before, after)
	if err != nil {
		return nil, fmt.Errorf("step %s: %w (compared offline after etcd %s stopped)", s, err, s.To.Version)
	}
	e.keys = after
	return []any{"keys", after.Keys, "keys_expired", expired, "digest_ms", (beforeCost + after.Duration).Milliseconds()}, nil
}

func (e *Executor) procConfig(v *version.Version, enableV2 bool, log *slog.Logger) etcdproc.Config {
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

// v2ToV3 converts the v2 store offline, then runs etcd-<To> on the result like an
// upgrade step, so a real server has taken over the data (and restored its leases)
// before version.txt records etcd3.
func (e *Executor) v2ToV3(ctx context.Context, s Step) ([]any, error) {
	start := time.Now()
	res, err := v2tov3.Convert(ctx, v2tov3.Options{
		DataDir:        e.DataDir,
		Target:         s.To,
		ClusterVersion: versionfile.MinorString(s.To.Version) + ".0",
		Name:           e.Member.Name,
		PeerURLs:       strings.Split(e.Member.InitialAdvertisePeerURLs, ","),
		InitialCluster: e.Member.InitialCluster,
		TTLKeysDir:     e.TTLKeysDir,
		DefaultTTL:     e.DefaultTTL,
		Now:            time.Now,
		Logger:         e.Logger.With("step", string(s.Kind)),
	})
	if err != nil {
		return nil, fmt.Errorf("step %s: %w", s, err)
	}
	convertMs := time.Since(start).Milliseconds()
	t, err := e.runEtcd(ctx, s, s.To.Version, nil)
	if err != nil {
		return nil, err
	}
	return append(t, "keys", res.Keys, "leases", res.Leases, "expired_skipped", res.Expired, "digest", res.Digest, "convert_ms", convertMs), nil
}

// upgrade (a minor or patch step) runs etcd of To on the data. Before a hop into
// 3.6 the data's 3.5
// etcd first deletes the v2 content preflight found, and saves a snapshot past the
// deletes: etcd 3.6 rebuilds its v2 store from that snapshot and the WAL after it,
// and refuses to start if it holds anything but membership.
func (e *Executor) upgrade(ctx context.Context, s Step) ([]any, error) {
	var dropped []any
	if e.dropsV2(s, s.From.Version) {
		start := time.Now()
		_, err := e.runEtcd(ctx, s, s.From.Version, func(ctx context.Context, p *etcdproc.Process, _ *clientv3.Client) error {
			for _, k := range e.DropV2Top {
				if err := p.DeleteV2(ctx, k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		ms := time.Since(start).Milliseconds()
		e.Logger.Info("dropped the v2 store's content before etcd 3.6", "step", string(s.Kind), "etcd", s.From.Version.String(),
			"v2_top_level_nodes", len(e.DropV2Top), "duration_ms", ms)
		dropped = []any{"v2_content_dropped_ms", ms}
		e.DropV2Top = nil
	}
	t, err := e.runEtcd(ctx, s, s.To.Version, nil)
	return append(t, dropped...), err
}

// rollbackMinor has etcd of the minor being left lower the cluster (and storage)
// version to To's minor through etcd's downgrade API, saving a snapshot past it;
// then etcd of To takes over the data and ends the downgrade job. Snapshots taken
// after each version change keep either etcd from replaying entries of the other.
func (e *Executor) rollbackMinor(ctx context.Context, s Step) ([]any, error) {
	if RollbackBySnapshot(s) {
		return e.rollbackBySnapshot(ctx, s)
	}
	want := versionfile.MinorString(s.To.Version)
	start := time.Now()
	// The data is normally at Via's minor; after a rollback cut short it may be at
	// the target already (then there is nothing to downgrade).
	_, err := e.runEtcd(ctx, s, s.Via, func(ctx context.Context, p *etcdproc.Process, c *clientv3.Client) error {
		if v, err := p.Versions(ctx); err == nil && etcdproc.AtMinor(v.Cluster, want) {
			return nil
		}
		if err := etcdproc.Downgrade(ctx, c, want); err != nil {
			return err
		}
		_, err := p.WaitMinor(ctx, want)
		return err
	}, versionfile.MinorString(s.Via), want)
	if err != nil {
		return nil, err
	}
	downgradeMs := time.Since(start).Milliseconds()
	t, err := e.runEtcd(ctx, s, s.To.Version, func(ctx context.Context, p *etcdproc.Process, c *clientv3.Client) error {
		// etcd's monitor ends the job itself once the member runs the target;
		// a job left behind would block the next upgrade.
		return p.WaitDowngradeDone(ctx, c)
	})
	if err != nil {
		return nil, err
	}
	return append(t, "via", s.Via.String(), "downgrade_ms", downgradeMs), nil
}

// toEtcd2 rewrites the v3 keyspace as a v2 store in a fresh member dir, then (for a
// 3.x target) runs etcd of To with the v2 API on it like any step.
func (e *Executor) toEtcd2(ctx context.Context, s Step) ([]any, error) {
	start := time.Now()
	res, err := rollback.Convert(rollback.Options{
		DataDir: e.DataDir, Target: s.To, Name: e.Member.Name,
		PeerURLs: strings.Split(e.Member.InitialAdvertisePeerURLs, ","), InitialCluster: e.Member.InitialCluster,
		Prefix: e.DataPrefix, Now: time.Now, Logger: e.Logger.With("step", string(s.Kind)),
	})
	if err != nil {
		return nil, fmt.Errorf("step %s: %w", s, err)
	}
	attrs := []any{"keys", res.Keys, "leased", res.Leased, "convert_ms", time.Since(start).Milliseconds()}
	if s.To.Major() < 3 {
		// etcd 2.x has no v3 API for the readiness checks; the offline
		// verification stands.
		return attrs, nil
	}
	t, err := e.runEtcd(ctx, s, s.To.Version, nil)
	if err != nil {
		return nil, err
	}
	return append(t, attrs...), nil
}

// rollbackBySnapshot takes a snapshot through the serving etcd of the minor being
// left, restores it with the older etcdctl into a new member dir (the member's name,
// peer URLs and initial cluster from config), swaps that in and runs the older etcd
// on it. Revisions, values, versions and leases are in the snapshot; the cluster and
// member IDs are new.
func (e *Executor) rollbackBySnapshot(ctx context.Context, s Step) ([]any, error) {
	work, err := memberdir.Begin(e.DataDir, "rollback", s.To)
	if err != nil {
		return nil, err
	}
	defer work.AbortUnlessReplaced()
	snapPath := work.Path("snapshot.db")
	start := time.Now()
	_, err = e.runEtcd(ctx, s, s.Via, func(ctx context.Context, _ *etcdproc.Process, c *clientv3.Client) error {
		return etcdproc.SaveSnapshotFile(ctx, c, snapPath)
	})
	if err != nil {
		return nil, err
	}
	out := work.Path("out")
	cmd := exec.CommandContext(ctx, EtcdctlBinary(e.BinDir, s.To.Version), "snapshot", "restore", snapPath,
		"--name="+e.Member.Name, "--initial-cluster="+e.Member.InitialCluster,
		"--initial-advertise-peer-urls="+e.Member.InitialAdvertisePeerURLs, "--data-dir="+out)
	cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("step %s: etcdctl-%s snapshot restore: %w: %s", s, s.To.Version, err, lastLine(b))
	}
	if err := os.Remove(snapPath); err != nil {
		return nil, err
	}
	if err := work.Replace(filepath.Join(out, "member")); err != nil {
		return nil, err
	}
	restoreMs := time.Since(start).Milliseconds()
	t, err := e.runEtcd(ctx, s, s.To.Version, nil)
	if err != nil {
		return nil, err
	}
	return append(t, "via", s.Via.String(), "snapshot_restore_ms", restoreMs), nil
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// runEtcd runs etcd-<v> until the cluster (3.6+: and storage) version is at
// its minor, a write has committed and a snapshot covers everything applied so far;
// then stops it gracefully.
// It returns the step's timings as log attributes.
// afterReady, when set, runs once etcd is ready, before the snapshot.
// accept lists the minors the cluster may be at for etcd to count as started
// (default: v's minor).
func (e *Executor) runEtcd(ctx context.Context, s Step, v *version.Version, afterReady func(context.Context, *etcdproc.Process, *clientv3.Client) error, accept ...string) (timings []any, err error) {
	if len(accept) == 0 {
		accept = []string{versionfile.MinorString(v)}
	}
	log := e.Logger.With("step", string(s.Kind), "etcd", v.String())
	start := time.Now()
	// etcd2 data is served with the v2 API.
	fault.Point(fault.StepBeforeStart)
	enableV2 := (s.To.Storage == versionfile.StorageEtcd2 && v.Equal(s.To.Version)) || e.dropsV2(s, v)
	p, err := etcdproc.Start(e.procConfig(v, enableV2, log))
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

	// Connect once etcd answers: a gRPC dial to a port nobody listens on yet backs
	// off for a second.
	if _, err := p.WaitMinor(ctx); err != nil {
		return nil, fmt.Errorf("step %s: %w", s, err)
	}
	fault.Point(fault.StepAfterStart)
	c, err := p.Client()
	if err != nil {
		return nil, fmt.Errorf("step %s: client: %w", s, err)
	}
	defer c.Close()
	if (s.Kind == KindUpgradeMinor || s.Kind == KindUpgradePatch) && versionfile.CompareMinor(v, v36) >= 0 {
		// A downgrade job left in the data would hold the cluster version down.
		if err := p.WaitWrite(ctx, c); err != nil {
			return nil, fmt.Errorf("step %s: %w", s, err)
		}
		if cancelled, err := etcdproc.CancelLeftoverDowngrade(ctx, c, p.URL()); err != nil {
			return nil, fmt.Errorf("step %s: %w", s, err)
		} else if cancelled {
			log.Warn("cancelled a downgrade job left in the data, which kept the cluster version from moving up")
		}
	}
	vers, err := p.WaitMinor(ctx, accept...)
	if err != nil {
		return nil, fmt.Errorf("step %s: %w", s, err)
	}
	versionsAt := time.Since(start)
	if err := p.WaitWrite(ctx, c); err != nil {
		return nil, fmt.Errorf("step %s: %w", s, err)
	}
	readyAt := time.Since(start)
	if afterReady != nil {
		if err := afterReady(ctx, p, c); err != nil {
			return nil, fmt.Errorf("step %s: etcd %s: %w", s, v, err)
		}
	}
	snapIdx, err := p.SaveSnapshot(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("step %s: %w", s, err)
	}
	snapAt := time.Since(start)
	fault.Point(fault.StepBeforeStop)
	killed, err := p.Stop()
	if err != nil {
		return nil, fmt.Errorf("step %s: %w", s, err)
	}
	fault.Point(fault.StepAfterStop)
	if killed {
		log.Warn("etcd did not stop within the stop timeout and was killed; its data is crash-safe and the snapshot was already saved", "stop_timeout", e.StopTimeout)
	}
	return []any{"etcd", v.String(), "cluster_version", vers.Cluster, "storage_version", vers.Storage,
		"snapshot_index", snapIdx, "versions_ms", versionsAt.Milliseconds(), "ready_ms", readyAt.Milliseconds(),
		"snapshot_ms", snapAt.Milliseconds(), "stop_ms", (time.Since(start) - snapAt).Milliseconds()}, nil
}
