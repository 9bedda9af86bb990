package steps

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-migrate/etcd-migrate/pkg/etcdproc"
	"github.com/etcd-migrate/etcd-migrate/pkg/etcdversion"
	"github.com/etcd-migrate/etcd-migrate/pkg/lockstep"
	"github.com/etcd-migrate/etcd-migrate/pkg/steprun"
	"github.com/etcd-migrate/etcd-migrate/pkg/v2tov3"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// UpgradeMinor runs etcd of the next minor on the data until the cluster (and from
// 3.6 the storage) version moved to that minor and a snapshot covers it.
type UpgradeMinor struct {
	steprun.Move
	// converted: an earlier step of the plan wrote a fresh member dir from etcd2
	// data, so its v2 store holds membership only.
	converted bool
	// dropV2Top names the top-level v2 nodes the hop into 3.6 deletes first, as
	// Preflight found them.
	dropV2Top []string
	// prev is the rank of the walk's previous lockstep point, -1 if none (a member
	// of several: see ForCluster).
	prev int
}

func (*UpgradeMinor) Kind() steprun.Kind { return steprun.KindUpgradeMinor }

func (s *UpgradeMinor) String() string {
	return fmt.Sprintf("%s %s -> %s (run etcd-%s)", s.Kind(), s.From, s.To, s.To.Version)
}

func (s *UpgradeMinor) Binaries(binDir string) []string {
	return []string{steprun.EtcdBinary(binDir, s.To.Version)}
}

// crossesV2Removal reports whether the step moves etcd3 data from a minor that
// still loads the v2 store's content (3.5 and older) to one that refuses it (3.6+).
func (s *UpgradeMinor) crossesV2Removal() bool {
	return s.From.Storage == versionfile.StorageEtcd3 &&
		etcdversion.For(s.From.Version).V2StoreContent && !etcdversion.For(s.To.Version).V2StoreContent
}

// Preflight reads the v2 store of etcd3 data whose walk hops into 3.6 (which refuses
// a v2 store with content) and refuses what cannot be dropped safely; what can is
// kept for Run, which then also needs the data's own etcd.
func (s *UpgradeMinor) Preflight(env *steprun.Env) error {
	if !s.crossesV2Removal() || s.converted {
		return nil
	}
	content, err := v2tov3.ReadV2Content(zap.NewNop(), env.DataDir, env.WALDir, env.DataPrefix)
	if err != nil {
		return err
	}
	if content.MetaOnly {
		return nil
	}
	if err := content.Check(env.DataPrefix, env.DropV2Content); err != nil {
		return fmt.Errorf("%s -> %s: %w", s.From, s.To, err)
	}
	bin := steprun.EtcdBinary(env.BinDir, s.From.Version)
	if err := steprun.CheckExecutable(bin); err != nil {
		return err
	}
	env.Logger.Info("the v2 store holds content etcd 3.6+ refuses: the hop into 3.6 deletes it first", "v2_keys", content.Keys,
		"outside_prefix", content.OutsidePrefix, "top_level_nodes", len(content.Top), "with", filepath.Base(bin))
	s.dropV2Top = content.Top
	return nil
}

// deleteV2 deletes the top-level v2 nodes Preflight found, through the v2 API.
func (s *UpgradeMinor) deleteV2(ctx context.Context, p *etcdproc.Process, _ *clientv3.Client) error {
	for _, k := range s.dropV2Top {
		if err := p.DeleteV2(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// Run: before a hop into 3.6 the data's own (3.5) etcd first deletes the v2 content
// Preflight found and saves a snapshot past the deletes: etcd 3.6 rebuilds its v2
// store from that snapshot and the WAL after it, and refuses to start if it holds
// anything but membership.
func (s *UpgradeMinor) Run(ctx context.Context, env *steprun.Env) ([]any, error) {
	return env.KeepKeys(s, func() ([]any, error) {
		var dropped []any
		if len(s.dropV2Top) > 0 {
			ms, err := s.dropV2(ctx, env)
			if err != nil {
				return nil, err
			}
			dropped = []any{"v2_content_dropped_ms", ms}
		}
		t, err := env.Etcd(ctx, s, s.To.Version, steprun.EtcdRun{RaiseClusterVersion: true,
			Point: lockstep.Up(minorCode(s.To.Version), lockstep.PhaseMinor)})
		return append(t, dropped...), err
	})
}

func (s *UpgradeMinor) dropV2(ctx context.Context, env *steprun.Env) (int64, error) {
	start := time.Now()
	_, err := env.Etcd(ctx, s, s.From.Version, steprun.EtcdRun{EnableV2: true, AfterReady: s.deleteV2,
		Point: lockstep.Point{Rank: lockstep.Up(minorCode(s.From.Version), lockstep.PhaseV2Drop).Rank, Soft: true, Prev: s.prev}})
	if err != nil {
		return 0, err
	}
	ms := time.Since(start).Milliseconds()
	env.Logger.Info("dropped the v2 store's content before etcd 3.6", "step", string(s.Kind()), "etcd", s.From.Version.String(),
		"v2_top_level_nodes", len(s.dropV2Top), "duration_ms", ms)
	s.dropV2Top = nil
	return ms, nil
}
