//go:build linux

package powercut

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// The real etcds run on the mount (WAL: preallocation, pwrite, fdatasync; bbolt:
// pwrite, fdatasync, mmap reads), lose power right after a SIGKILL and serve every
// write they acknowledged after the "reboot": the model keeps what etcd made
// durable, and etcd makes durable what it acknowledges.
func TestEtcdOnTheMount(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real etcds")
	}
	binDir := etcdtest.BinDir(t)
	for _, v := range []string{"3.4.13", "3.5.35", "3.6.16", "3.7.3"} {
		t.Run(v, func(t *testing.T) {
			fsys, backing := mounted(t, nil)
			// A new member's first boot is not durable under the strict model: etcd
			// creates the data and member dirs with MkdirAll and fsyncs neither
			// parent, and writes its first WAL segment in member/wal.tmp, which it
			// renames to member/wal and fsyncs member/ but never fsyncs wal.tmp
			// (ext4's journal makes that create durable with the fsync of member/;
			// POSIX does not). So the test makes the new member durable (FS.Sync,
			// as the kernel's writeback would within seconds) and cuts the power
			// during writes after that.
			dataDir := filepath.Join(fsys.Mountpoint(), "data")
			s := etcdtest.Serve(t, binDir, v, dataDir)
			if err := fsys.Sync(); err != nil {
				t.Fatal(err)
			}
			const n = 100
			for i := 0; i < n; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := s.Client.Put(ctx, fmt.Sprintf("k%03d", i), fmt.Sprintf("v%d", i))
				cancel()
				if err != nil {
					t.Fatalf("put %d: %v", i, err)
				}
			}
			// The power goes with etcd still running.
			fsys.Freeze()
			_ = syscall.Kill(s.Proc.Pid(), syscall.SIGKILL)
			s.Stop()
			cut(t, fsys)
			st := fsys.Stats()
			t.Logf("etcd %s: %d file syncs, %d dir syncs, %d bytes synced", v, st.FileSyncs, st.DirSyncs, st.BytesSynced)

			fsys = remount(t, backing)
			s = etcdtest.Serve(t, binDir, v, filepath.Join(fsys.Mountpoint(), "data"))
			got := s.DumpAll(t)
			kept := 0
			for ; kept < n; kept++ {
				if kv, ok := got.Keys[fmt.Sprintf("k%03d", kept)]; !ok || kv.Value != fmt.Sprintf("v%d", kept) {
					break
				}
			}
			for i := kept; i < n; i++ {
				if _, ok := got.Keys[fmt.Sprintf("k%03d", i)]; ok {
					t.Errorf("key k%03d kept after k%03d was lost: not a prefix of the writes", i, kept)
				}
			}
			// etcd before 3.4.21 and 3.5.5 acknowledges a write of a single member
			// before its WAL entry is fsynced (etcd-io/etcd#14370, found with
			// LazyFS): the one write in flight may be lost. The model finds it.
			allowed := 0
			if v == "3.4.13" {
				allowed = 1
			}
			if n-kept > allowed {
				t.Errorf("etcd %s lost %d acknowledged writes of %d (from k%03d)", v, n-kept, n, kept)
			} else if n-kept > 0 {
				t.Logf("etcd %s lost its last acknowledged write (etcd-io/etcd#14370, fixed in 3.4.21 and 3.5.5)", v)
			}
			s.Stop()
			if err := fsys.Unmount(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(backing, "data", "member", "snap", "db")); err != nil {
				t.Errorf("db after a clean unmount: %v", err)
			}
		})
	}
}
