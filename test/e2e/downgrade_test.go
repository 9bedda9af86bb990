package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/pkg/datadir"
	"github.com/etcd-migrate/etcd-migrate/pkg/etcdproc"
)

// TestUpgradeCancelsLeftoverDowngrade: data whose downgrade to 3.5 was enabled and
// reached (by hand, say) but never ended keeps a 3.6 etcd's cluster version at 3.5.
// The upgrade step must end that job and move on instead of waiting out its timeout.
func TestUpgradeCancelsLeftoverDowngrade(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	dataDir := etcdtest.ExtractFixture(t, fixture34)
	if r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.6.16", "--exec=false"); r.code != 0 {
		t.Fatalf("walk: exit %d\n%s", r.code, r.stderr)
	}
	// Downgrade to 3.5 by hand with etcd 3.6.16 and stop with the job still enabled.
	s := etcdtest.Serve(t, binDir, "3.6.16", dataDir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, a := range []clientv3.DowngradeAction{clientv3.DowngradeValidate, clientv3.DowngradeEnable} {
		if _, err := s.Client.Downgrade(ctx, a, "3.5"); err != nil {
			t.Fatalf("downgrade: %v", err)
		}
	}
	for {
		v, err := etcdproc.GetVersions(ctx, s.ClientURL)
		if err == nil && v.Cluster == "3.5.0" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("cluster version never reached 3.5: %+v %v", v, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	st, err := s.Client.Status(ctx, s.ClientURL)
	if err != nil || st.DowngradeInfo == nil || !st.DowngradeInfo.Enabled {
		t.Fatalf("want the downgrade job still enabled: %+v %v", st, err)
	}
	s.Stop()
	// Once etcd has also moved the storage version down, the data is at 3.5: left
	// at 3.6.16, version.txt would be read as a rollback cut short and planned
	// from 3.5.x, whose patch step (etcd 3.5.35) ends the job itself. Recorded as
	// 3.5.35, the 3.6 step meets the job; with the storage version still 3.6,
	// 3.6.16 stays right and the 3.7 step meets it.
	st2, err := datadir.Detect(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if st2.StorageVersion == "" {
		if err := writeFile(filepath.Join(dataDir, "version.txt"), "3.5.35/etcd3\n"); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("after the downgrade: %s; version.txt %s", st2, strings.TrimSpace(readVersionTxt(t, dataDir)))

	r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.7.3", "--exec=false", "--step-timeout=60s")
	if r.code != 0 {
		t.Fatalf("upgrade: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "cancelled a downgrade job left in the data") {
		t.Fatalf("no cancelled downgrade logged:\n%s", r.stderr)
	}
	if got := readVersionTxt(t, dataDir); got != "3.7.3/etcd3\n" {
		t.Fatalf("version.txt = %q", got)
	}
}
