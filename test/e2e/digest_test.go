package e2e

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/storage/backend"
	"go.etcd.io/etcd/server/v3/storage/mvcc"
	"go.uber.org/zap"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// TestLeaseExpiresDuringStep: a lease that expires while a step's etcd runs (a
// Kubernetes master lease lives 15 s) deletes its keys, a revision after the one
// the step started at. The step's digest accepts exactly that: every record up to
// the starting revision as it was, then only the deletion of the expired lease's
// keys. The walk goes on to 3.7.3 with every other key, revision and lease intact.
func TestLeaseExpiresDuringStep(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	dataDir := etcdtest.CopyDir(t, etcdtest.ExtractFixture(t, fixture34))
	s := etcdtest.Serve(t, binDir, "3.4.13", dataDir)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	short, err := s.Client.Grant(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	long, err := s.Client.Grant(ctx, 3600)
	if err != nil {
		t.Fatal(err)
	}
	expiring := []string{"/registry/masterleases/10.0.0.1", "/registry/masterleases/10.0.0.2", "/registry/masterleases/10.0.0.3"}
	for _, k := range expiring {
		if _, err := s.Client.Put(ctx, k, "x", clientv3.WithLease(short.ID)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Client.Put(ctx, "/registry/events/default/long", "y", clientv3.WithLease(long.ID)); err != nil {
		t.Fatal(err)
	}
	want := s.DumpAll(t)
	s.Stop()
	// What the expiry leaves: the short lease and its keys gone, in one revision.
	for _, k := range expiring {
		delete(want.Keys, k)
	}
	delete(want.Leases, int64(short.ID))
	want.Revision++

	// The first step's etcd (3.5) pauses once it answers, longer than the lease
	// lives from its start (its TTL plus the election timeout etcd adds).
	env := []string{"ETCD_MIGRATE_FAULT_PAUSE=step.after-start:1@6s"}
	r := runMigrate(t, binDir, dataDir, env, "--target-version=3.7.3", "--exec=false")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	step := logLine(r.stderr, "version_txt=3.5.")
	if !strings.Contains(step, " keys_expired=3 ") {
		t.Fatalf("the 3.5 step's log line does not count the 3 expired keys:\n%s", step)
	}
	for _, later := range []string{"version_txt=3.6.", "version_txt=3.7."} {
		if l := logLine(r.stderr, later); !strings.Contains(l, " keys_expired=0 ") {
			t.Errorf("a later step expired keys:\n%s", l)
		}
	}
	assertServedKeyspace(t, binDir, "3.7.3", dataDir, want, "after a lease expired during the 3.5 step")
}

// TestPendingCompactionFinishedByStep: etcd stopped between scheduling a compaction
// and finishing it (a kill during Kubernetes' 5-minute compaction). The next etcd
// to open the data, the first step's, finishes it at start and removes history; the
// live keys stay. The digest of that data compares live keys, so the walk passes,
// and the compaction took effect.
func TestPendingCompactionFinishedByStep(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	dataDir := etcdtest.CopyDir(t, etcdtest.ExtractFixture(t, fixture34))
	s := etcdtest.Serve(t, binDir, "3.4.13", dataDir)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	first, err := s.Client.Put(ctx, "/registry/configmaps/default/c", "1")
	if err != nil {
		t.Fatal(err)
	}
	last, err := s.Client.Put(ctx, "/registry/configmaps/default/c", "2")
	if err != nil {
		t.Fatal(err)
	}
	want := s.DumpAll(t)
	s.Stop()
	// What etcd records when it schedules a compaction: scheduledCompactRev,
	// written before the compaction runs; finishedCompactRev only after it.
	be := backend.NewDefaultBackend(zap.NewNop(), filepath.Join(dataDir, "member", "snap", "db"))
	mvcc.SetScheduledCompact(be.BatchTx(), last.Header.Revision)
	be.ForceCommit()
	if err := be.Close(); err != nil {
		t.Fatal(err)
	}

	r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.7.3", "--exec=false")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	assertServedKeyspace(t, binDir, "3.7.3", dataDir, want, "after a pending compaction was finished by the 3.5 step")
	s = etcdtest.Serve(t, binDir, "3.7.3", dataDir)
	defer s.Stop()
	_, err = s.Client.Get(ctx, "/registry/configmaps/default/c", clientv3.WithRev(first.Header.Revision))
	if !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("a read at revision %d before the compaction at %d: %v, want ErrCompacted", first.Header.Revision, last.Header.Revision, err)
	}
}
