//go:build oldetcd

package e2e

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/internal/fixture"
	"github.com/etcd-migrate/etcd-migrate/pkg/rollback"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// TestOldReleasesCannotReadTheWALWritten is why the seed's 3.0.x/etcd3 ->
// 2.2.x/etcd2 rollback is refused and why etcd2 data converts at 3.1 at the
// earliest: the etcd2 member dir migrate writes for a rollback (its WAL written by
// etcd's wal package, which pads records to 8 bytes since 3.1) makes the real etcd
// 2.2.5 and 3.0.17 exit with a panic, while 3.1.20 serves it with every key.
func TestOldReleasesCannotReadTheWALWritten(t *testing.T) {
	binDir := oldBinDir(t, "2.2.5")
	port := fixture.PortPair(t)
	peer := fmt.Sprintf("http://127.0.0.1:%d", port+1)
	dataDir := etcdtest.CopyDir(t, etcdtest.ExtractFixture(t, fixture34))
	res, err := rollback.Convert(rollback.Options{
		DataDir: dataDir, Target: versionfile.MustPair("3.1.20/etcd2"), Name: "etcd-member",
		PeerURLs: []string{peer}, InitialCluster: "etcd-member=" + peer, Prefix: "/registry",
		Now: time.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"2.2.5", "3.0.17"} {
		s, err := fixture.StartOld(binDir, v, etcdtest.CopyDir(t, dataDir), port, 0)
		if err == nil {
			s.Stop()
			t.Fatalf("etcd %s served the etcd2 data dir migrate wrote; the refusals of rollbacks to etcd2 at 2.x and 3.0 are then wrong", v)
		}
		if !strings.Contains(err.Error(), "panic:") || !strings.Contains(err.Error(), "exited before it was healthy") {
			t.Fatalf("etcd %s: want an exit with a panic reading the WAL, got: %v", v, err)
		}
		line := ""
		for _, l := range strings.Split(err.Error(), "\n") {
			if strings.HasPrefix(l, "panic:") {
				line = l
				break
			}
		}
		t.Logf("etcd %s on the etcd2 member dir migrate writes: %s", v, line)
	}
	s, err := fixture.StartOld(binDir, "3.1.20", dataDir, port, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	n := 0
	for _, node := range etcdtest.DumpV2(t, s.URL) {
		if !node.Dir {
			n++
		}
	}
	if n != res.Keys {
		t.Fatalf("etcd 3.1.20 serves %d v2 keys, the conversion wrote %d", n, res.Keys)
	}
	t.Logf("etcd 3.1.20 serves the same member dir: %d v2 keys", n)
}
