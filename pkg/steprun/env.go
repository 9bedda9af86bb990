package steprun

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-migrate/etcd-migrate/pkg/diskspace"
	"github.com/etcd-migrate/etcd-migrate/pkg/etcdproc"
	"github.com/etcd-migrate/etcd-migrate/pkg/keyspace"
	"github.com/etcd-migrate/etcd-migrate/pkg/lockstep"
	"github.com/etcd-migrate/etcd-migrate/pkg/memberdir"
	"github.com/etcd-migrate/etcd-migrate/pkg/v2tov3"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// Env is what the steps of one run share.
type Env struct {
	DataDir string
	// WALDir is the member's separate WAL dir (--wal-dir), "" when the WAL is in
	// the data dir. Only steps that keep the member dir support one.
	WALDir string
	BinDir string
	// Member is the identity and private URLs of the steps' etcd.
	Member etcdproc.Member
	// ReadyTimeout bounds one step's wait for etcd to take over the data.
	ReadyTimeout time.Duration
	// StopTimeout bounds the graceful stop before SIGKILL.
	StopTimeout time.Duration
	// TTLKeysDir: keys below it without a v2 TTL get a lease of DefaultTTL when the
	// v2 store is converted (what the Kubernetes migration did for events).
	TTLKeysDir string
	DefaultTTL time.Duration
	// DataPrefix is the Kubernetes key prefix (values below it must be JSON for
	// etcd2; v2 content below it may always be dropped before 3.6).
	DataPrefix string
	// DropV2Content: v2 content outside DataPrefix may be dropped too.
	DropV2Content bool
	// Cluster is the member's cluster when it has several members (nil for a
	// lone member): each etcd run then ends at a barrier every member reaches.
	Cluster *lockstep.Cluster
	Logger  *slog.Logger

	// keys is the keyspace digest of the data as the last step left it; v2keys
	// the v2 keyspace as the last etcd2-mode step left it.
	keys   *keyspace.Digest
	v2keys *v2tov3.V2Keys
}

// Run executes one step and records its result in version.txt only once the data is
// in that state. It logs one line per step, with its timings.
func (e *Env) Run(ctx context.Context, s Step) error {
	err := e.run(ctx, s)
	if err != nil && !errors.Is(err, context.Canceled) {
		// etcd dies of a full disk with "failed to save snapshot" or the like:
		// say what is wrong.
		if hint := diskspace.Hint(e.DataDir, StepSpace); hint != "" {
			err = fmt.Errorf("%w; %s", err, hint)
		}
	}
	return err
}

func (e *Env) run(ctx context.Context, s Step) error {
	start := time.Now()
	m := s.Span()
	attrs := []any{"kind", string(s.Kind()), "from", m.From.String(), "version_txt", m.To.String()}
	// An empty data dir may not exist yet.
	if err := os.MkdirAll(e.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir %s: %w", e.DataDir, err)
	}
	// The record is written (not yet renamed) before the step changes anything.
	record, err := versionfile.Prepare(e.DataDir, m.To)
	if err != nil {
		return fmt.Errorf("step %s: %w", s, err)
	}
	defer record.Abort()
	t, err := s.Run(ctx, e)
	if err != nil {
		return err
	}
	if err := record.Commit(); err != nil {
		return err
	}
	// Only now that version.txt records the step may a replaced member dir go.
	if err := memberdir.Cleanup(e.DataDir); err != nil {
		return err
	}
	e.Logger.Info("step done", append(append(attrs, t...), "duration_ms", time.Since(start).Milliseconds())...)
	return nil
}

// KeepKeys runs an etcd3 -> etcd3 step's work and proves the keys came out as they
// went in: the keyspace digest before (the one the previous step left, or read
// now) is compared offline with the one after; a difference fails the step before
// version.txt records it.
func (e *Env) KeepKeys(s Step, work func() ([]any, error)) ([]any, error) {
	before, beforeCost, err := e.keysBefore(s)
	if err != nil {
		return nil, err
	}
	t, err := work()
	if err != nil {
		return nil, err
	}
	e.keys = nil
	after, err := keyspace.After(e.DataDir, before)
	if err != nil {
		return nil, fmt.Errorf("after step %s: %w", s, err)
	}
	if e.Cluster != nil && after.Revision != before.Revision {
		// A member that was behind caught up with the cluster through raft
		// during the run: its keys moved with the cluster's, as they must.
		e.Logger.Info("the member caught up with the cluster during the step: the keyspace moved through raft and is not compared",
			"revision_before", before.Revision, "revision_after", after.Revision)
		e.keys = after
		return append(t, "key_revisions", after.Revisions, "keys_compared", false), nil
	}
	expired, err := keyspace.Compare(before, after)
	if err != nil {
		return nil, fmt.Errorf("step %s: %w (compared offline after etcd %s stopped)", s, err, s.Span().To.Version)
	}
	e.keys = after
	return append(t, "key_revisions", after.Revisions, "keys_expired", expired, "digest_ms", (beforeCost + after.Duration).Milliseconds()), nil
}

// KeepKeysUnlessServed is KeepKeys for a run that needs no other member: on a
// cluster of several, the others may be serving clients meanwhile (a rolling
// restart), and their writes reach this member's data through raft; then the
// keyspace is not compared (raft replicates the keys; no offline copy is the
// reference) and the next step reads its own "before".
func (e *Env) KeepKeysUnlessServed(s Step, work func() ([]any, error)) ([]any, error) {
	if e.Cluster == nil {
		return e.KeepKeys(s, work)
	}
	e.keys = nil
	t, err := work()
	return append(t, "keys_compared", false), err
}

func (e *Env) keysBefore(s Step) (*keyspace.Digest, time.Duration, error) {
	if e.keys != nil {
		return e.keys, 0, nil
	}
	if s.Span().From.Storage != versionfile.StorageEtcd3 {
		return nil, 0, fmt.Errorf("step %s: no etcd3 keyspace to check", s)
	}
	d, err := keyspace.Of(e.DataDir)
	if err != nil {
		return nil, 0, fmt.Errorf("before step %s: %w", s, err)
	}
	return d, d.Duration, nil
}

// KeepV2Keys is KeepKeys for an etcd2-mode step: the v2 keyspace, rebuilt offline
// from the snapshot and WAL before and after, must come out with every key's
// value, indexes and expiry unchanged (keys that expired meanwhile may go).
func (e *Env) KeepV2Keys(s Step, work func() ([]any, error)) ([]any, error) {
	lg := zap.NewNop()
	before, cost := e.v2keys, time.Duration(0)
	if before == nil {
		var err error
		if before, err = v2tov3.ReadV2Keys(lg, e.DataDir); err != nil {
			return nil, fmt.Errorf("before step %s: %w", s, err)
		}
		cost = before.Duration
	}
	e.v2keys = nil
	t, err := work()
	if err != nil {
		return nil, err
	}
	after, err := v2tov3.ReadV2Keys(lg, e.DataDir)
	if err != nil {
		return nil, fmt.Errorf("after step %s: %w", s, err)
	}
	expired, err := v2tov3.CompareV2Keys(before, after, time.Now())
	if err != nil {
		return nil, fmt.Errorf("step %s: %w (compared offline after etcd %s stopped)", s, err, s.Span().To.Version)
	}
	e.v2keys = after
	return append(t, "keys", len(after.Keys), "keys_expired", expired, "digest_ms", (cost + after.Duration).Milliseconds()), nil
}
