package steps

import (
	"context"
	"errors"
	"fmt"

	"github.com/etcd-migrate/etcd-migrate/pkg/lockstep"
	"github.com/etcd-migrate/etcd-migrate/pkg/rollback"
	"github.com/etcd-migrate/etcd-migrate/pkg/steprun"
)

// HandOver is the last minor hop of a member of a cluster of several: the data's
// own etcd (From) runs until a snapshot covers everything applied, then version.txt
// records To and etcd-To is exec'd. etcd's own mixed-version upgrade raises the
// cluster version once every member runs To, so the member does not wait for the
// others: it works when they restart together and when they restart one at a time
// while the others keep serving From's minor. A hop into 3.6 also drops the v2
// content in that run, as UpgradeMinor does.
type HandOver struct {
	*UpgradeMinor
	// prev is the rank of the walk's previous lockstep point, -1 if none: the
	// members that were there walk with this one and are waited for.
	prev int
}

func (*HandOver) Kind() steprun.Kind { return steprun.KindHandOver }

func (s *HandOver) String() string {
	return fmt.Sprintf("%s %s -> %s (run etcd-%s for a snapshot; etcd-%s takes over, and the cluster version moves once every member runs it)", s.Kind(), s.From, s.To, s.From.Version, s.To.Version)
}

func (s *HandOver) Binaries(binDir string) []string {
	return []string{steprun.EtcdBinary(binDir, s.From.Version), steprun.EtcdBinary(binDir, s.To.Version)}
}

func (s *HandOver) Run(ctx context.Context, env *steprun.Env) ([]any, error) {
	point := lockstep.Up(minorCode(s.From.Version), lockstep.PhaseHandOver)
	point.Soft, point.Prev, point.Final = true, s.prev, true
	r := steprun.EtcdRun{Point: point}
	if len(s.dropV2Top) > 0 {
		r.EnableV2, r.AfterReady = true, s.deleteV2
	}
	return env.KeepKeysUnlessServed(s, func() ([]any, error) { return env.Etcd(ctx, s, s.From.Version, r) })
}

// ErrRebuildsMembership marks the steps refused on a cluster of several members.
var ErrRebuildsMembership = errors.New("rebuilds membership")

// ForCluster adapts a plan to a member of a cluster of several: the steps that
// write a new member dir (the etcd2 conversion, the snapshot restore, the rollback
// to etcd2) are refused, since each member would get a cluster of its own; the last
// minor hop up becomes a HandOver. Each step learns the walk's previous lockstep
// point: the runs that need no other member (patch steps, the v2 drop, the
// hand-over) wait only for the members that were there, so a member restarted
// alone while the others serve is not held up.
func ForCluster(plan []steprun.Step, members int) ([]steprun.Step, error) {
	out := append([]steprun.Step(nil), plan...)
	prev := -1
	for i, s := range out {
		if s.RewritesMemberDir() {
			return nil, fmt.Errorf("%s: on a cluster of %s this step %w: every member would start a cluster of its own. Remove the other members (etcdctl member remove), migrate this one alone, then add them back with empty data dirs; or choose a target reached by upgrades and 3.6+ rollbacks", s, membersText(members), ErrRebuildsMembership)
		}
		switch s := s.(type) {
		case UpgradePatch:
			s.prev = prev
			out[i] = s
			prev = lockstep.Up(minorCode(s.To.Version), lockstep.PhaseMinor).Rank
		case *UpgradeMinor:
			u := *s
			u.prev = prev
			out[i] = &u
			if i == len(out)-1 {
				out[i] = &HandOver{UpgradeMinor: &u, prev: prev}
			}
			prev = lockstep.Up(minorCode(s.To.Version), lockstep.PhaseMinor).Rank
		}
	}
	if n := len(out); n > 0 {
		switch s := out[n-1].(type) {
		case UpgradePatch:
			s.Final = true
			out[n-1] = s
		case *rollback.DowngradeMinor:
			d := *s
			d.Final = true
			out[n-1] = &d
		}
	}
	return out, nil
}

func membersText(n int) string {
	if n > 1 {
		return fmt.Sprintf("%d members", n)
	}
	return "several members"
}
