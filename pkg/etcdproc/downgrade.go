package etcdproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-migrate/etcd-migrate/pkg/durable"
	"github.com/etcd-migrate/etcd-migrate/pkg/etcdversion"
)

// Downgrade asks the cluster to downgrade to minor ("3.6"): a pending downgrade job
// is cancelled first (an earlier rollback leaves one behind), then the target is
// validated and enabled. The server then lowers the cluster version and, from 3.6,
// migrates the storage schema down; WaitMinor sees it.
func Downgrade(ctx context.Context, c *clientv3.Client, minor string) error {
	if err := CancelDowngrade(ctx, c); err != nil {
		return err
	}
	return enableDowngrade(ctx, c, minor)
}

// JoinDowngrade enables the downgrade of a cluster of several members to minor,
// once: a job to minor another member enabled is this one's too; a job to
// anything else is the operator's and is refused, never cancelled.
func JoinDowngrade(ctx context.Context, c *clientv3.Client, clientURL, minor string) error {
	job, err := DowngradeJob(ctx, c, clientURL)
	if err != nil {
		return err
	}
	if job != "" {
		if AtMinor(job, minor) {
			return nil
		}
		return fmt.Errorf("the cluster has a downgrade job to %s enabled, not to %s: finish or cancel it (etcdctl downgrade cancel) first; migrate does not cancel a job on a cluster of several members", job, minor)
	}
	err = enableDowngrade(ctx, c, minor)
	if err != nil && strings.Contains(err.Error(), rpctypes.ErrorDesc(rpctypes.ErrGRPCDowngradeInProcess)) {
		return nil // another member enabled it meanwhile
	}
	return err
}

func enableDowngrade(ctx context.Context, c *clientv3.Client, minor string) error {
	for _, a := range []clientv3.DowngradeAction{clientv3.DowngradeValidate, clientv3.DowngradeEnable} {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := c.Downgrade(actx, a, minor)
		cancel()
		if err != nil {
			return fmt.Errorf("downgrade %s to %s: %w", downgradeName(a), minor, err)
		}
	}
	return nil
}

// CancelLeftoverDowngrade ends a downgrade job a 3.6+ server reports as enabled: one
// left in the data (a rollback by other means) keeps the cluster version from
// moving up.
func CancelLeftoverDowngrade(ctx context.Context, c *clientv3.Client, clientURL string) (bool, error) {
	if job, err := DowngradeJob(ctx, c, clientURL); err != nil || job == "" {
		return false, nil
	}
	return true, CancelDowngrade(ctx, c)
}

// DowngradeJob is the target of the downgrade job a 3.6+ server reports as
// enabled ("" when none, or when the server does not report it).
func DowngradeJob(ctx context.Context, c *clientv3.Client, clientURL string) (string, error) {
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	st, err := c.Status(sctx, clientURL)
	cancel()
	if err != nil {
		return "", err
	}
	if st.DowngradeInfo == nil || !st.DowngradeInfo.Enabled {
		return "", nil
	}
	return st.DowngradeInfo.TargetVersion, nil
}

// CancelDowngrade ends a downgrade job, if one is pending.
func CancelDowngrade(ctx context.Context, c *clientv3.Client) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := c.Downgrade(cctx, clientv3.DowngradeCancel, "")
	if err != nil && !noInflightDowngrade(err) {
		return fmt.Errorf("cancel the pending downgrade job: %w", err)
	}
	return nil
}

// noInflightDowngrade: etcd answered that no downgrade job is enabled.
func noInflightDowngrade(err error) bool {
	return errors.Is(rpctypes.Error(err), rpctypes.ErrNoInflightDowngrade) ||
		rpctypes.ErrorDesc(err) == rpctypes.ErrorDesc(rpctypes.ErrGRPCNoInflightDowngrade)
}

// EndDowngradeJob ends the downgrade job of a lone member that runs the job's
// target version, as etcd's downgrade monitor would, and returns once etcd answers
// that no job is left. It is for 3.5, whose monitor's cancel request never gets
// its answer (3.5 applies a DowngradeInfoSet without triggering the proposer's
// wait): the monitor sits in it for etcd's 5.2 s request timeout, and a stop waits
// for the monitor. A cancel of ours is applied at once; its unanswered wait ends
// with our short deadline, and the next cancel hears "no inflight downgrade".
func EndDowngradeJob(ctx context.Context, c *clientv3.Client) error {
	for {
		cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err := c.Downgrade(cctx, clientv3.DowngradeCancel, "")
		cancel()
		if err != nil && noInflightDowngrade(err) {
			return nil
		}
		if Permanent(err) {
			return fmt.Errorf("end the downgrade job: %w", err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("end the downgrade job (last: %v): %w", err, ctx.Err())
		}
	}
}

// WaitDowngradeDone waits until etcd's downgrade monitor has ended the downgrade
// job (every member now runs the target version). A 3.6+ server reports the job in
// its status; 3.5 does not, so for it the monitor's log line is the signal. (3.5
// then logs that its cancel request timed out and takes 5 s longer to stop, yet the
// job is ended: a later upgrade to 3.6 moves on, which it does not while the job is
// recorded. Measured with 3.5.35.)
func (p *Process) WaitDowngradeDone(ctx context.Context, c *clientv3.Client) error {
	reports := etcdversion.For(p.cfg.Version).DowngradeStatus
	for {
		if reports {
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			st, err := c.Status(sctx, p.URL())
			cancel()
			if err == nil && (st.DowngradeInfo == nil || !st.DowngradeInfo.Enabled) {
				return nil
			}
			if Permanent(err) {
				return fmt.Errorf("etcd %s: status: %w", p.cfg.Version, err)
			}
		} else if p.downgraded.Load() {
			return nil
		}
		if err := p.sleepOrDone(ctx, PollInterval); err != nil {
			return fmt.Errorf("etcd %s: waiting for the downgrade job to end: %w", p.cfg.Version, err)
		}
	}
}

// SaveSnapshotFile streams the server's backend snapshot into path durably (temp
// file, fsync, rename), as etcdctl snapshot save does.
func SaveSnapshotFile(ctx context.Context, c *clientv3.Client, path string) error {
	rc, err := c.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	defer rc.Close()
	tmp := path + ".part"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		return fmt.Errorf("snapshot into %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return durable.SyncDir(filepath.Dir(path))
}

func downgradeName(a clientv3.DowngradeAction) string {
	switch a {
	case clientv3.DowngradeValidate:
		return "validate"
	case clientv3.DowngradeEnable:
		return "enable"
	}
	return "cancel"
}
