package steps

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-version"

	"github.com/etcd-migrate/etcd-migrate/pkg/lockstep"
	"github.com/etcd-migrate/etcd-migrate/pkg/steprun"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// UpgradePatch runs etcd of a newer patch of the data's own minor on the data, like
// an upgrade step: before a minor hop when the data's patch is older than the
// newest bundled one of its minor or unknown (etcd's upgrade rule: the newest patch
// of the current minor first; 3.5.26+ repairs membership that 3.6 relies on), or to
// reach the target's patch when the data's is unknown.
type UpgradePatch struct {
	steprun.Move
	// prev is the rank of the walk's previous lockstep point, -1 if none (a member
	// of several: see ForCluster).
	prev int
}

func (UpgradePatch) Kind() steprun.Kind { return steprun.KindUpgradePatch }

func (s UpgradePatch) String() string {
	return fmt.Sprintf("%s %s -> %s (run etcd-%s)", s.Kind(), s.From, s.To, s.To.Version)
}

func (s UpgradePatch) Binaries(binDir string) []string {
	return []string{steprun.EtcdBinary(binDir, s.To.Version)}
}

func (s UpgradePatch) Run(ctx context.Context, env *steprun.Env) ([]any, error) {
	// The cluster version stays: a downgrade job enabled on the cluster (an
	// operator's rolling downgrade) is left alone.
	// It needs no other member, so it waits only for those walking with it.
	point := lockstep.Up(minorCode(s.To.Version), lockstep.PhaseMinor)
	point.Soft, point.Prev, point.Final = true, s.prev, s.Final
	return env.KeepKeysUnlessServed(s, func() ([]any, error) {
		return env.Etcd(ctx, s, s.To.Version, steprun.EtcdRun{RaiseClusterVersion: env.Cluster == nil, Point: point})
	})
}

// minorCode is major*100+minor, the minor's place in lockstep points.
func minorCode(v *version.Version) int { return versionfile.Major(v)*100 + versionfile.Minor(v) }
