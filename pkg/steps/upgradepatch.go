package steps

import (
	"context"
	"fmt"

	"github.com/etcd-migrate/etcd-migrate/pkg/etcdversion"
	"github.com/etcd-migrate/etcd-migrate/pkg/steprun"
)

// UpgradePatch runs etcd of a newer patch of the data's own minor on the data, like
// an upgrade step: before a minor hop when the data's patch is older than the
// newest bundled one of its minor or unknown (etcd's upgrade rule: the newest patch
// of the current minor first; 3.5.26+ repairs membership that 3.6 relies on), or to
// reach the target's patch when the data's is unknown.
type UpgradePatch struct{ steprun.Move }

func (UpgradePatch) Kind() steprun.Kind { return steprun.KindUpgradePatch }

func (s UpgradePatch) String() string {
	return fmt.Sprintf("%s %s -> %s (run etcd-%s)", s.Kind(), s.From, s.To, s.To.Version)
}

func (s UpgradePatch) Binaries(binDir string) []string {
	return []string{steprun.EtcdBinary(binDir, s.To.Version)}
}

func (s UpgradePatch) Run(ctx context.Context, env *steprun.Env) ([]any, error) {
	return env.KeepKeys(s, func() ([]any, error) { return runTarget(ctx, env, s) })
}

// runTarget runs the upgrade's target etcd on the data. A downgrade job left in
// 3.6+ data would hold the cluster version down: the upgrade cancels it.
func runTarget(ctx context.Context, env *steprun.Env, s steprun.Step) ([]any, error) {
	v := s.Span().To.Version
	return env.Etcd(ctx, s, v, steprun.EtcdRun{CancelLeftoverDowngrade: etcdversion.For(v).DowngradeStatus})
}
