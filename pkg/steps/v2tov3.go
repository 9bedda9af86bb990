package steps

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/etcd-migrate/etcd-migrate/pkg/steprun"
	"github.com/etcd-migrate/etcd-migrate/pkg/v2tov3"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// ConvertV2ToV3 converts the v2 store into the v3 keyspace offline (pkg/v2tov3),
// then runs etcd of To on the result like an upgrade step, so a real server has
// taken over the data (and restored its leases) before version.txt records etcd3.
type ConvertV2ToV3 struct{ steprun.Move }

func (ConvertV2ToV3) Kind() steprun.Kind { return steprun.KindV2ToV3 }

func (s ConvertV2ToV3) String() string {
	return fmt.Sprintf("%s %s -> %s (convert offline, then run etcd-%s)", s.Kind(), s.From, s.To, s.To.Version)
}

func (s ConvertV2ToV3) Binaries(binDir string) []string {
	return []string{steprun.EtcdBinary(binDir, s.To.Version)}
}

func (ConvertV2ToV3) RewritesMemberDir() bool    { return true }
func (ConvertV2ToV3) Space(dataSize int64) int64 { return steprun.RewriteSpace(dataSize) }

func (s ConvertV2ToV3) Run(ctx context.Context, env *steprun.Env) ([]any, error) {
	start := time.Now()
	res, err := v2tov3.Convert(ctx, v2tov3.Options{
		DataDir:        env.DataDir,
		Target:         s.To,
		ClusterVersion: versionfile.MinorString(s.To.Version) + ".0",
		Name:           env.Member.Name,
		PeerURLs:       strings.Split(env.Member.InitialAdvertisePeerURLs, ","),
		InitialCluster: env.Member.InitialCluster,
		TTLKeysDir:     env.TTLKeysDir,
		DefaultTTL:     env.DefaultTTL,
		Now:            time.Now,
		Logger:         env.Logger.With("step", string(s.Kind())),
	})
	if err != nil {
		return nil, fmt.Errorf("step %s: %w", s, err)
	}
	convertMs := time.Since(start).Milliseconds()
	t, err := env.Etcd(ctx, s, s.To.Version, steprun.EtcdRun{})
	if err != nil {
		return nil, err
	}
	return append(t, "keys", res.Keys, "leases", res.Leases, "expired_skipped", res.Expired, "digest", res.Digest, "convert_ms", convertMs), nil
}
