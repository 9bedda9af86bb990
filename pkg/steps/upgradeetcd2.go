package steps

import (
	"context"
	"fmt"

	"github.com/etcd-migrate/etcd-migrate/pkg/steprun"
)

// UpgradeEtcd2 moves etcd2 data one minor up in etcd2 storage (the seed's 2.2 ->
// 2.3 -> 3.0) by running the next minor's etcd on it until the cluster version
// and a v2 snapshot are at that minor (steprun.Env.EtcdV2). etcd reads its own
// older data; migrate writes no key, so every v2 index stays, which the step
// proves by comparing the v2 keyspace before and after (Env.KeepV2Keys).
type UpgradeEtcd2 struct{ steprun.Move }

func (UpgradeEtcd2) Kind() steprun.Kind { return steprun.KindUpgradeEtcd2 }

func (s UpgradeEtcd2) String() string {
	return fmt.Sprintf("%s %s -> %s (run etcd-%s with the v2 API)", s.Kind(), s.From, s.To, s.To.Version)
}

func (s UpgradeEtcd2) Binaries(binDir string) []string {
	return []string{steprun.EtcdBinary(binDir, s.To.Version)}
}

// Preflight refuses a member of several: etcd2-mode steps have no lockstep.
func (s UpgradeEtcd2) Preflight(env *steprun.Env) error {
	if env.Cluster != nil {
		return fmt.Errorf("%s: etcd2-mode upgrades of a cluster of several members are %w: convert to etcd3 (TARGET_STORAGE=etcd3), which walks in lockstep", s, ErrNotSupported)
	}
	return nil
}

func (s UpgradeEtcd2) Run(ctx context.Context, env *steprun.Env) ([]any, error) {
	return env.KeepV2Keys(s, func() ([]any, error) { return env.EtcdV2(ctx, s, s.To.Version) })
}
