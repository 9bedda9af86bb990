package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// onlyDataDirMounted runs a command in a private mount namespace in which parent
// (an empty dir) gets a tmpfs of its own — a container's /var/etcd — and only the
// host's data dir is bind-mounted at parent/data: what a container sees when only
// the data dir is mounted. Anything written beside the data dir stays in that
// namespace's tmpfs.
func onlyDataDirMounted(parent, hostDataDir string) []string {
	return []string{"unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs tmpfs "$0" && mkdir "$0/data" && mount --bind "$1" "$0/data" && shift && exec "$@"`, parent, hostDataDir}
}

// needUnshare skips (visibly) where private mount namespaces cannot be made.
func needUnshare(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: needs root for unshare --mount and mount")
	}
	if out, err := exec.Command("unshare", "--mount", "--propagation", "private", "true").CombinedOutput(); err != nil {
		t.Skipf("SKIPPED: unshare --mount does not work here: %v %s", err, strings.TrimSpace(string(out)))
	}
}

// serveByExec starts migrate on dataDir (a path inside wrap, if set) with
// target 3.4.13 — the fixture's own version, nothing to migrate — so it execs
// etcd 3.4.13, which keeps the data dir lock while it serves. It returns the pid
// (migrate's, then etcd's) once etcd answers; the process is stopped at cleanup.
func serveByExec(t *testing.T, binDir, dataDir string, wrap []string) int {
	t.Helper()
	port, peer := etcdtest.FreePort(t), etcdtest.FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	cmd := migrateCmd(t, binDir, dataDir, nil, "--target-version=3.4.13", "--",
		"--name=etcd-member", "--listen-client-urls="+url, "--advertise-client-urls="+url,
		fmt.Sprintf("--listen-peer-urls=http://127.0.0.1:%d", peer))
	if len(wrap) > 0 {
		p, err := exec.LookPath(wrap[0])
		if err != nil {
			t.Fatal(err)
		}
		cmd.Path = p
		cmd.Args = append(append([]string(nil), wrap...), cmd.Args...)
	}
	pid, _, _ := execServing(t, cmd, url, "3.4.13")
	return pid
}

// TestLockWhateverIsMounted: the data dir lock holds between two migrators on one
// data dir whether they see it under the same path or each in its own container
// with only the data dir mounted (each with its own parent dir, where a lock file
// beside the data dir would be per-container). The holder is an exec'd etcd
// serving the data; the second migrator fails within seconds, exit 2, naming the
// holder, and changes nothing; once the holder is gone it runs.
func TestLockWhateverIsMounted(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	pristine := etcdtest.ExtractFixture(t, fixture34)

	t.Run("same path", func(t *testing.T) {
		dataDir := etcdtest.CopyDir(t, pristine)
		pid := serveByExec(t, binDir, dataDir, nil)
		start := time.Now()
		r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.7.3", "--exec=false")
		took := time.Since(start)
		want := fmt.Sprintf("another migrate holds the lock on %s (pid %d etcd-3.4.13, flock on the data dir)", dataDir, pid)
		if line := errorLine(t, r); r.code != 2 || !strings.Contains(line, want) || took > 5*time.Second {
			t.Fatalf("second migrator: exit %d after %v, %s\nwant exit 2 within 5s and %q", r.code, took, line, want)
		}
		if got := readVersionTxt(t, dataDir); got != "3.4.13/etcd3\n" {
			t.Fatalf("version.txt %q", got)
		}
		t.Logf("refused in %v", took.Round(time.Millisecond))
	})

	t.Run("only the data dir mounted, one parent per container", func(t *testing.T) {
		needUnshare(t)
		dataDir := etcdtest.CopyDir(t, pristine)
		parentA, parentB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
		for _, p := range []string{parentA, parentB} {
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		pid := serveByExec(t, binDir, parentA+"/data", onlyDataDirMounted(parentA, dataDir))
		start := time.Now()
		r := runWrapped(t, binDir, parentB+"/data", nil, onlyDataDirMounted(parentB, dataDir), "--target-version=3.7.3", "--exec=false")
		took := time.Since(start)
		want := fmt.Sprintf("another migrate holds the lock on %s/data (pid %d etcd-3.4.13, flock on the data dir)", parentB, pid)
		if line := errorLine(t, r); r.code != 2 || !strings.Contains(line, want) || took > 5*time.Second {
			t.Fatalf("second container: exit %d after %v, %s\nwant exit 2 within 5s and %q", r.code, took, line, want)
		}
		if got := readVersionTxt(t, dataDir); got != "3.4.13/etcd3\n" {
			t.Fatalf("version.txt %q", got)
		}
		// Nothing was written into the host's parent dirs (the namespaces' tmpfs
		// took anything beside the data dir).
		for _, p := range []string{parentA, parentB} {
			if es, _ := os.ReadDir(p); len(es) != 0 {
				t.Fatalf("%s on the host holds %v", p, es)
			}
		}
		t.Logf("refused in %v", took.Round(time.Millisecond))

		// The holder gone, the second container migrates.
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		r = runWrapped(t, binDir, parentB+"/data", nil, onlyDataDirMounted(parentB, dataDir), "--target-version=3.5.35", "--exec=false", "--backup=false")
		if r.code != 0 {
			t.Fatalf("after the holder stopped: exit %d\n%s", r.code, r.stderr)
		}
		if got := readVersionTxt(t, dataDir); got != "3.5.35/etcd3\n" {
			t.Fatalf("version.txt %q", got)
		}
	})
}
