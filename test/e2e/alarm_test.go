package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// TestNospaceAlarmRefused: data whose etcd raised a NOSPACE alarm (the db reached
// its quota) takes no write, and every step writes. Migrate refuses it before
// anything runs (exit 2, the data byte for byte as it was), naming the alarm and
// the way out.
func TestNospaceAlarmRefused(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	dataDir := etcdtest.CopyDir(t, etcdtest.ExtractFixture(t, fixture34))
	s := etcdtest.ServeArgs(t, binDir, "3.4.13", dataDir, "--quota-backend-bytes=1048576")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Client.Put(ctx, "/registry/over-quota", "x"); err == nil || !strings.Contains(err.Error(), "database space exceeded") {
		t.Fatalf("a put over the quota: %v, want database space exceeded", err)
	}
	alarms, err := s.Client.AlarmList(ctx)
	if err != nil || len(alarms.Alarms) != 1 {
		t.Fatalf("alarm list: %+v, %v; want one NOSPACE alarm", alarms, err)
	}
	s.Stop()

	before := etcdtest.Checksum(t, dataDir)
	start := time.Now()
	r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.7.3", "--exec=false")
	if r.code != 2 {
		t.Fatalf("exit %d, want 2\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"records the etcd alarm NOSPACE on member ", "run `etcdctl alarm disarm`, then run migrate again"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if etcdtest.Checksum(t, dataDir) != before {
		t.Fatal("the refused run changed the data dir")
	}
	t.Logf("refused in %v", time.Since(start).Round(time.Millisecond))
}
