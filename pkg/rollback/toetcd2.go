package rollback

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/etcd-migrate/etcd-migrate/pkg/etcdversion"
	"github.com/etcd-migrate/etcd-migrate/pkg/steprun"
)

// ToEtcd2 rewrites the v3 keyspace as a v2 store in a fresh member dir (Convert),
// then runs etcd of To (2.2 to 3.5) with the v2 API on it like any step.
type ToEtcd2 struct{ steprun.Move }

func (ToEtcd2) Kind() steprun.Kind { return steprun.KindRollbackToEtcd2 }

func (s ToEtcd2) String() string {
	return fmt.Sprintf("%s %s -> %s (convert offline, then run etcd-%s with the v2 API)", s.Kind(), s.From, s.To, s.To.Version)
}

func (s ToEtcd2) Binaries(binDir string) []string {
	return []string{steprun.EtcdBinary(binDir, s.To.Version)}
}

func (ToEtcd2) RewritesMemberDir() bool    { return true }
func (ToEtcd2) Space(dataSize int64) int64 { return steprun.RewriteSpace(dataSize) }

// Preflight refuses, before the first step, what the v2 store cannot hold.
func (s ToEtcd2) Preflight(env *steprun.Env) error {
	keys, err := ReadKeyspace(env.DataDir)
	if err != nil {
		return err
	}
	if err := Check(keys, env.DataPrefix); err != nil {
		return fmt.Errorf("%s -> %s: %w", s.From, s.To, err)
	}
	return nil
}

func (s ToEtcd2) Run(ctx context.Context, env *steprun.Env) ([]any, error) {
	start := time.Now()
	res, err := Convert(Options{
		DataDir: env.DataDir, Target: s.To, Name: env.Member.Name,
		PeerURLs: strings.Split(env.Member.InitialAdvertisePeerURLs, ","), InitialCluster: env.Member.InitialCluster,
		Prefix: env.DataPrefix, Now: time.Now, Logger: env.Logger.With("step", string(s.Kind())),
	})
	if err != nil {
		return nil, fmt.Errorf("step %s: %w", s, err)
	}
	attrs := []any{"keys", res.Keys, "leased", res.Leased, "convert_ms", time.Since(start).Milliseconds()}
	var t []any
	if etcdversion.For(s.To.Version).V3Backend {
		t, err = env.Etcd(ctx, s, s.To.Version, steprun.EtcdRun{EnableV2: true})
	} else {
		// etcd 2.x serves the v2 API only: the etcd2-mode run.
		t, err = env.EtcdV2(ctx, s, s.To.Version)
	}
	if err != nil {
		return nil, err
	}
	return append(t, attrs...), nil
}
