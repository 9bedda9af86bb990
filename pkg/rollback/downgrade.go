package rollback

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/go-version"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-migrate/etcd-migrate/pkg/etcdproc"
	"github.com/etcd-migrate/etcd-migrate/pkg/etcdversion"
	"github.com/etcd-migrate/etcd-migrate/pkg/lockstep"
	"github.com/etcd-migrate/etcd-migrate/pkg/steprun"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// DowngradeMinor goes one minor down through etcd's downgrade API: etcd of Via (the
// minor being left) lowers the cluster and storage version to To's minor and saves
// a snapshot past it; then etcd of To takes over the data and ends the downgrade
// job. Snapshots taken after each version change keep either etcd from replaying
// entries of the other.
type DowngradeMinor struct {
	steprun.Move
	// Via is the bundled etcd of From's minor.
	Via *version.Version
}

func (*DowngradeMinor) Kind() steprun.Kind { return steprun.KindRollbackMinor }

func (s *DowngradeMinor) String() string {
	return fmt.Sprintf("%s %s -> %s (downgrade with etcd-%s, then run etcd-%s)", s.Kind(), s.From, s.To, s.Via, s.To.Version)
}

func (s *DowngradeMinor) Binaries(binDir string) []string {
	return []string{steprun.EtcdBinary(binDir, s.Via), steprun.EtcdBinary(binDir, s.To.Version)}
}

func (s *DowngradeMinor) Run(ctx context.Context, env *steprun.Env) ([]any, error) {
	return env.KeepKeys(s, func() ([]any, error) { return s.run(ctx, env) })
}

func (s *DowngradeMinor) run(ctx context.Context, env *steprun.Env) ([]any, error) {
	want := versionfile.MinorString(s.To.Version)
	start := time.Now()
	// The data is normally at Via's minor; after a rollback cut short it may be at
	// the target already (then there is nothing to downgrade).
	reached := versionfile.Major(s.To.Version)*100 + versionfile.Minor(s.To.Version)
	restart := false
	_, err := env.Etcd(ctx, s, s.Via, steprun.EtcdRun{
		Accept: []string{versionfile.MinorString(s.Via), want},
		Point:  lockstep.Down(reached, 0),
		AfterReady: func(ctx context.Context, p *etcdproc.Process, c *clientv3.Client) error {
			if v, err := p.Versions(ctx); err == nil && etcdproc.AtMinor(v.Cluster, want) {
				return nil
			}
			if env.Cluster == nil {
				// etcd lowers the cluster version on its version monitor's next
				// tick, 4 s after its start, or at the first commit of a new
				// raft term: a lone member restarted now gets there sooner.
				restart = true
				return etcdproc.Downgrade(ctx, c, want)
			}
			// Whichever member gets here first enables it; the others join.
			if err := etcdproc.JoinDowngrade(ctx, c, p.URL(), want); err != nil {
				return err
			}
			_, err := p.WaitMinor(ctx, want)
			return err
		}})
	if err == nil && restart {
		// The enabled job is in the data: the restarted Via lowers the versions
		// as its first term begins (this run waits for them at want).
		_, err = env.Etcd(ctx, s, s.Via, steprun.EtcdRun{Accept: []string{want}})
	}
	if err != nil {
		return nil, err
	}
	downgradeMs := time.Since(start).Milliseconds()
	// A lone 3.5 ends the job through the API, not its monitor (EndDowngradeJob).
	lone35 := env.Cluster == nil && !etcdversion.For(s.To.Version).DowngradeStatus
	t, err := env.Etcd(ctx, s, s.To.Version, steprun.EtcdRun{
		Point:              lockstep.Point{Down: true, Rank: lockstep.Down(reached, 1).Rank, Final: s.Final},
		NoDowngradeMonitor: lone35,
		// etcd's monitor ends the job itself once the member runs the target; a
		// job left behind would block the next upgrade.
		AfterReady: func(ctx context.Context, p *etcdproc.Process, c *clientv3.Client) error {
			switch {
			case lone35:
				return etcdproc.EndDowngradeJob(ctx, c)
			case env.Cluster != nil && !etcdversion.For(s.To.Version).DowngradeStatus:
				// 3.5 reports the job's end only in its leader's log; the
				// leader's monitor ends it once every member runs 3.5, which
				// the barrier after this run waits for.
				return nil
			}
			return p.WaitDowngradeDone(ctx, c)
		}})
	if err != nil {
		return nil, err
	}
	return append(t, "via", s.Via.String(), "downgrade_ms", downgradeMs, "via_restarted", restart), nil
}
