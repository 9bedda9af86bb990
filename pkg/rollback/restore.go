package rollback

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-version"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-migrate/etcd-migrate/pkg/etcdproc"
	"github.com/etcd-migrate/etcd-migrate/pkg/fault"
	"github.com/etcd-migrate/etcd-migrate/pkg/memberdir"
	"github.com/etcd-migrate/etcd-migrate/pkg/steprun"
)

// RestoreSnapshot goes one minor down where the minor being left has no downgrade
// API for it (3.5 -> 3.4): a snapshot taken through the serving etcd of Via is
// restored with the older etcdctl into a new member dir (the member's name, peer
// URLs and initial cluster from config), swapped in, and the older etcd runs on
// it. Revisions, values, versions and leases are in the snapshot; the cluster and
// member IDs are new.
type RestoreSnapshot struct {
	steprun.Move
	// Via is the bundled etcd of From's minor.
	Via *version.Version
}

func (*RestoreSnapshot) Kind() steprun.Kind { return steprun.KindRollbackMinor }

func (s *RestoreSnapshot) String() string {
	return fmt.Sprintf("%s %s -> %s (snapshot with etcd-%s, restore with etcdctl-%s, then run etcd-%s)", s.Kind(), s.From, s.To, s.Via, s.To.Version, s.To.Version)
}

func (s *RestoreSnapshot) Binaries(binDir string) []string {
	return []string{steprun.EtcdBinary(binDir, s.Via), steprun.EtcdBinary(binDir, s.To.Version), steprun.EtcdctlBinary(binDir, s.To.Version)}
}

func (*RestoreSnapshot) RewritesMemberDir() bool    { return true }
func (*RestoreSnapshot) Space(dataSize int64) int64 { return steprun.RewriteSpace(dataSize) }

func (s *RestoreSnapshot) Run(ctx context.Context, env *steprun.Env) ([]any, error) {
	return env.KeepKeys(s, func() ([]any, error) { return s.run(ctx, env) })
}

func (s *RestoreSnapshot) run(ctx context.Context, env *steprun.Env) ([]any, error) {
	work, err := memberdir.Begin(env.DataDir, "rollback", s.To)
	if err != nil {
		return nil, err
	}
	defer work.AbortUnlessReplaced()
	snapPath := work.Path("snapshot.db")
	start := time.Now()
	_, err = env.Etcd(ctx, s, s.Via, steprun.EtcdRun{
		AfterReady: func(ctx context.Context, _ *etcdproc.Process, c *clientv3.Client) error {
			return etcdproc.SaveSnapshotFile(ctx, c, snapPath)
		}})
	if err != nil {
		return nil, err
	}
	outDir := work.Path("out")
	m := env.Member
	cmd := exec.CommandContext(ctx, steprun.EtcdctlBinary(env.BinDir, s.To.Version), "snapshot", "restore", snapPath,
		"--name="+m.Name, "--initial-cluster="+m.InitialCluster,
		"--initial-advertise-peer-urls="+m.InitialAdvertisePeerURLs, "--data-dir="+outDir)
	cmd.Env = append(etcdproc.ChildEnv(), "ETCDCTL_API=3")
	etcdproc.DiesWithMigrate(cmd)
	out := &restoreOutput{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("step %s: etcdctl-%s snapshot restore: %w: %s", s, s.To.Version, err, lastLine(out.buf.Bytes()))
	}
	if err := os.Remove(snapPath); err != nil {
		return nil, err
	}
	if err := work.Replace(filepath.Join(outDir, "member")); err != nil {
		return nil, err
	}
	restoreMs := time.Since(start).Milliseconds()
	t, err := env.Etcd(ctx, s, s.To.Version, steprun.EtcdRun{})
	if err != nil {
		return nil, err
	}
	return append(t, "via", s.Via.String(), "snapshot_restore_ms", restoreMs), nil
}

// restoreOutput collects etcdctl's output. Its first line means the restore has
// begun writing: the crash tests kill migrate there (fault.RestoreRunning), with
// etcdctl mid-restore.
// Not an embedded bytes.Buffer: io.Copy would call its ReadFrom, not Write.
type restoreOutput struct {
	buf     bytes.Buffer
	started bool
}

func (o *restoreOutput) Write(p []byte) (int, error) {
	if !o.started {
		o.started = true
		fault.Point(fault.RestoreRunning)
	}
	return o.buf.Write(p)
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}
