package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// etcdLinkDir is a bin dir as the image lays it out: every bundled etcd-<v>,
// etcdctl-<v>, etcdutl-<v>, migrate, and etcd as a link to migrate. It returns the
// path of that etcd.
func etcdLinkDir(t *testing.T) string {
	t.Helper()
	src := etcdtest.BinDir(t)
	dir := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		n := e.Name()
		if n == "migrate" || strings.HasPrefix(n, "etcd-") || strings.HasPrefix(n, "etcdctl-") || strings.HasPrefix(n, "etcdutl-") {
			if err := os.Symlink(filepath.Join(src, n), filepath.Join(dir, n)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Symlink("migrate", filepath.Join(dir, "etcd")); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "etcd")
}

// etcdCmd is `etcd args…` through the link, run in cwd, with the image's own ENV
// defaults (DATA_DIRECTORY among them, which must not matter) and env on top.
func etcdCmd(etcd, cwd string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(etcd, args...)
	cmd.Dir = cwd
	cmd.Env = append(os.Environ(), "BUNDLED_VERSIONS="+etcdtest.Bundled, "TARGET_STORAGE=etcd3",
		"DATA_DIRECTORY=/var/etcd/data", "DO_NOT_MOVE_BINARIES=true")
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// kubeadmArgs is the command line kubeadm writes for a single member
// (cmd/kubeadm/app/phases/etcd/local.go), on loopback addresses and without TLS.
func kubeadmArgs(dataDir string, client, peer int) []string {
	c, p := fmt.Sprintf("http://127.0.0.1:%d", client), fmt.Sprintf("http://127.0.0.1:%d", peer)
	return []string{"--name=control-plane-0", "--data-dir=" + dataDir, "--advertise-client-urls=" + c,
		"--listen-client-urls=" + c, "--initial-advertise-peer-urls=" + p, "--listen-peer-urls=" + p,
		"--initial-cluster=control-plane-0=" + p, "--snapshot-count=10000"}
}

// TestEtcdLinkPassesThrough: `etcd --version`, `etcd --help` and a subcommand go
// straight to the target etcd (any patch of a bundled minor) and create nothing:
// not even etcd's default data dir, default.etcd, in the working directory.
func TestEtcdLinkPassesThrough(t *testing.T) {
	etcd := etcdLinkDir(t)
	cwd := t.TempDir()
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"TARGET_VERSION=3.6.2"}, []string{"--version"}, "etcd Version: 3.6.16"},
		{[]string{"TARGET_VERSION=3.5.35"}, []string{"--name=x", "--version"}, "etcd Version: 3.5.35"},
		{nil, []string{"--version"}, "etcd Version: 3.7.3"}, // TARGET_VERSION unset: the newest bundled
		{[]string{"TARGET_VERSION=3.7.3"}, []string{"--help"}, "etcd --version"},
		{[]string{"TARGET_VERSION=3.7.3"}, []string{"-h"}, "etcd --version"},
	} {
		var out bytes.Buffer
		cmd := etcdCmd(etcd, cwd, tc.env, tc.args...)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil || !strings.Contains(out.String(), tc.want) {
			t.Fatalf("%v etcd %v: %v, output lacks %q:\n%s", tc.env, tc.args, err, tc.want, out.String())
		}
	}
	if entries, _ := os.ReadDir(cwd); len(entries) != 0 {
		t.Fatalf("the pass-through invocations left %d entries in the working directory (%s)", len(entries), entries[0].Name())
	}
	var out bytes.Buffer
	cmd := etcdCmd(etcd, cwd, []string{"TARGET_VERSION=3.8.0"}, "--version")
	cmd.Stderr = &out
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(out.String(), "target version 3.8.0 is not bundled, nor any etcd 3.8.x") {
		t.Fatalf("TARGET_VERSION=3.8.0 etcd --version: %v, want exit 2 naming it:\n%s", err, out.String())
	}
}

// TestEtcdLinkMigratesKubeadmData: kubeadm's command line (`etcd --data-dir=… …`) on
// data written by 3.4.13 without version.txt, TARGET_VERSION=3.6.16: the link walks
// 3.4 -> 3.5 -> 3.6 (the data ends at storage version 3.6) and becomes etcd 3.6.16
// serving every key with its revisions; the image's DATA_DIRECTORY default does not
// get in the way. Started again on the same data it is a no-op and serves again.
func TestEtcdLinkMigratesKubeadmData(t *testing.T) {
	etcd := etcdLinkDir(t)
	binDir := etcdtest.BinDir(t)
	pristine := etcdtest.ExtractFixture(t, fixture34)
	want := baseline34(t, binDir, pristine)
	dataDir := etcdtest.CopyDir(t, pristine)
	if err := os.Remove(filepath.Join(dataDir, "version.txt")); err != nil {
		t.Fatal(err)
	}
	env := []string{"TARGET_VERSION=3.6.16"}
	for round, wantLog := range []string{"steps=3", "steps=0"} {
		client, peer := etcdtest.FreePort(t), etcdtest.FreePort(t)
		url := fmt.Sprintf("http://127.0.0.1:%d", client)
		cmd := etcdCmd(etcd, t.TempDir(), env, kubeadmArgs(dataDir, client, peer)...)
		pid, v, log := execServing(t, cmd, url, "3.6.16")
		if v.Cluster != "3.6.0" || v.Storage != "3.6.0" || !strings.Contains(log, `msg="migration done" version_txt=3.6.16/etcd3 `+wantLog) {
			t.Fatalf("round %d: versions %+v, log lacks %q:\n%s", round, v, wantLog, log)
		}
		if round == 0 {
			for _, w := range []string{"kind=upgrade-minor from=3.4.13/etcd3 version_txt=3.5.35/etcd3", "kind=upgrade-minor from=3.5.35/etcd3 version_txt=3.6.16/etcd3"} {
				if !strings.Contains(log, w) {
					t.Fatalf("log lacks %q:\n%s", w, log)
				}
			}
		}
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		got := etcdtest.DumpClient(t, c)
		c.Close()
		if diffs := etcdtest.Compare(want, got, 10); len(diffs) > 0 {
			t.Fatalf("round %d: etcd 3.6.16 serves another keyspace:\n%s", round, strings.Join(diffs, "\n"))
		}
		stopPid(t, pid)
		t.Logf("round %d: etcd (the link) became etcd 3.6.16 serving %d keys (%s)", round, len(got.Keys), wantLog)
	}
	if got := readVersionTxt(t, dataDir); got != "3.6.16/etcd3\n" {
		t.Fatalf("version.txt = %q", got)
	}
}

// TestEtcdLinkDefaultDataDir: without --data-dir or ETCD_DATA_DIR, etcd serves
// <name>.etcd in its working directory (name "default" unless set): so does the
// link, which records the target there first.
func TestEtcdLinkDefaultDataDir(t *testing.T) {
	etcd := etcdLinkDir(t)
	cwd := t.TempDir()
	client, peer := etcdtest.FreePort(t), etcdtest.FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", client)
	p := fmt.Sprintf("http://127.0.0.1:%d", peer)
	cmd := etcdCmd(etcd, cwd, []string{"TARGET_VERSION=3.7.3"}, "--listen-client-urls="+url, "--advertise-client-urls="+url,
		"--listen-peer-urls="+p, "--initial-advertise-peer-urls="+p, "--initial-cluster=default="+p)
	pid, _, _ := execServing(t, cmd, url, "3.7.3")
	stopPid(t, pid)
	if got := readVersionTxt(t, filepath.Join(cwd, "default.etcd")); got != "3.7.3/etcd3\n" {
		t.Fatalf("default.etcd/version.txt = %q", got)
	}
	if _, err := os.Stat(filepath.Join(cwd, "default.etcd", "member")); err != nil {
		t.Fatalf("etcd did not serve default.etcd: %v", err)
	}
}

// TestEtcdLinkRefusesKubeadm35FlagsOn37: kubeadm's 3.5-era flags on a 3.7.3 target
// (which removed them) exit 2 within a second, naming the replacement, with the data
// dir byte for byte as it was and no etcd started.
func TestEtcdLinkRefusesKubeadm35FlagsOn37(t *testing.T) {
	etcd := etcdLinkDir(t)
	dataDir := etcdtest.CopyDir(t, etcdtest.ExtractFixture(t, fixture34))
	sum := etcdtest.Checksum(t, dataDir)
	args := append(kubeadmArgs(dataDir, etcdtest.FreePort(t), etcdtest.FreePort(t)),
		"--experimental-initial-corrupt-check=true", "--experimental-watch-progress-notify-interval=5s")
	var out bytes.Buffer
	cmd := etcdCmd(etcd, t.TempDir(), []string{"TARGET_VERSION=3.7.3"}, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	var ee *exec.ExitError
	want := "replace --experimental-initial-corrupt-check after -- with --feature-gates=InitialCorruptCheck=true"
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(out.String(), want) {
		t.Fatalf("exit %v, want 2 with %q:\n%s", err, want, out.String())
	}
	if took > time.Second {
		t.Fatalf("the refusal took %v, want under a second", took)
	}
	if etcdtest.Checksum(t, dataDir) != sum {
		t.Fatal("the refused run changed the data dir")
	}
	t.Logf("refused in %v: %s", took.Round(time.Millisecond), logLine(out.String(), "migrate: error:"))
}

// TestEtcdLinkNoopLeavesFlagsToEtcd: on data already at the target, the image's
// etcd execs the target straight away, without starting it first to check its
// command line (that start doubled the cost of every restart): a flag the target
// refuses is then etcd's own exit 2, naming the flag, before it opens the data,
// which stays byte-identical.
func TestEtcdLinkNoopLeavesFlagsToEtcd(t *testing.T) {
	etcd := etcdLinkDir(t)
	dataDir := etcdtest.CopyDir(t, etcdtest.ExtractFixture(t, fixture34))
	sum := etcdtest.Checksum(t, dataDir)
	var out bytes.Buffer
	cmd := etcdCmd(etcd, t.TempDir(), []string{"TARGET_VERSION=3.4.13"},
		append(kubeadmArgs(dataDir, etcdtest.FreePort(t), etcdtest.FreePort(t)), "--feature-gates=InitialCorruptCheck=true")...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	const want = "flag provided but not defined: -feature-gates" // etcd 3.4.13's own line
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "steps=0") {
		t.Fatalf("exit %v, want a no-op (steps=0), then etcd 3.4.13's exit 2 with %q:\n%s", err, want, out.String())
	}
	if strings.Contains(out.String(), "accepts its command line") || strings.Contains(out.String(), "migrate: error:") {
		t.Fatalf("the no-op started the target to check its command line:\n%s", out.String())
	}
	if etcdtest.Checksum(t, dataDir) != sum {
		t.Fatal("the refused run changed the data dir")
	}
}

// stopPid stops the exec'd etcd with SIGTERM and waits until it is gone.
func stopPid(t *testing.T, pid int) {
	t.Helper()
	p, err := os.FindProcess(pid)
	if err != nil {
		t.Fatal(err)
	}
	_ = p.Signal(os.Interrupt)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if err := p.Signal(syscall.Signal(0)); err != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("etcd (pid %d) did not stop", pid)
}

// TestMigrateRunsTheToolItsFirstArgumentNames: the image's entrypoint is migrate, so
// `docker run IMAGE etcd …` is `migrate etcd …`: etcd (as the link), etcdctl,
// etcdutl and absolute paths run as they would in the Kubernetes image, which has no
// entrypoint; a typo of a migrate command is still named as one.
func TestMigrateRunsTheToolItsFirstArgumentNames(t *testing.T) {
	etcd := etcdLinkDir(t)
	migrateBin := filepath.Join(filepath.Dir(etcd), "migrate")
	cwd := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
		code int
	}{
		{[]string{"etcd", "--version"}, "etcd Version: 3.5.35", 0},
		{[]string{filepath.Dir(etcd) + "/etcd", "--version"}, "etcd Version: 3.5.35", 0},
		{[]string{"etcdctl-3.7.3", "version"}, "etcdctl version: 3.7.3", 0},
		{[]string{"etcdutl-3.6.16", "version"}, "etcdutl version: 3.6.16", 0},
		{[]string{"/bin/sh", "-c", "echo from-sh"}, "from-sh", 0},
		{[]string{"stauts"}, `unknown command "stauts" for "migrate" (did you mean "status"?)`, 2},
	} {
		var out bytes.Buffer
		cmd := etcdCmd(migrateBin, cwd, []string{"TARGET_VERSION=3.5.17"}, tc.args...)
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		if code != tc.code || !strings.Contains(out.String(), tc.want) {
			t.Errorf("migrate %v: exit %d (%v), want %d and %q:\n%s", tc.args, code, err, tc.code, tc.want, out.String())
		}
	}
	if entries, _ := os.ReadDir(cwd); len(entries) != 0 {
		t.Fatalf("left %d entries in the working directory", len(entries))
	}
}

// TestEtcdLinkBackupInsideTheMount: kubeadm mounts only the data dir, so a backup
// beside it would be the container's own filesystem. On a data dir that is a mount
// of its own (a tmpfs here) the backup is inside it, under .etcd-migrate-backup,
// which every etcd of the walk (3.4.13 … 3.7.3) starts beside; it is the data as it
// was, and served by 3.4.13 it is the same keyspace.
func TestEtcdLinkBackupInsideTheMount(t *testing.T) {
	etcd := etcdLinkDir(t)
	binDir := etcdtest.BinDir(t)
	pristine := etcdtest.ExtractFixture(t, fixture34)
	want := baseline34(t, binDir, pristine)
	dataDir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dataDir, "tmpfs", 0, "size=512m"); err != nil {
		t.Skipf("SKIPPED: cannot mount a tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dataDir, unix.MNT_DETACH) })
	if out, err := exec.Command("cp", "-a", pristine+"/.", dataDir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	if err := os.Remove(filepath.Join(dataDir, "version.txt")); err != nil {
		t.Fatal(err)
	}
	before := etcdtest.Checksum(t, filepath.Join(dataDir, "member"))
	client, peer := etcdtest.FreePort(t), etcdtest.FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", client)
	pid, _, log := execServing(t, etcdCmd(etcd, t.TempDir(), []string{"TARGET_VERSION=3.7.3"}, kubeadmArgs(dataDir, client, peer)...), url, "3.7.3")
	stopPid(t, pid)
	bak := filepath.Join(dataDir, ".etcd-migrate-backup", "data.bak")
	if !strings.Contains(log, `msg="backup written" path=`+bak) {
		t.Fatalf("log lacks the backup at %s:\n%s", bak, log)
	}
	if _, err := os.Stat(dataDir + ".bak"); !os.IsNotExist(err) {
		t.Fatalf("a backup beside the mounted data dir: %v", err)
	}
	if got := etcdtest.Checksum(t, filepath.Join(bak, "member")); got != before {
		t.Fatal("the backup's member dir is not the one from before the migration")
	}
	if entries, _ := os.ReadDir(bak); len(entries) != 1 {
		t.Fatalf("the backup holds %d entries, want member/ alone (no version.txt before)", len(entries))
	}
	assertServedKeyspace(t, binDir, "3.4.13", etcdtest.CopyDir(t, bak), want, "the backup inside the mount")
	assertServedKeyspace(t, binDir, "3.7.3", dataDir, want, "the migrated data beside its backup")
}

// BenchmarkEtcdLinkNoop: what the image's etcd costs before it execs the target when
// the data is already there (kubeadm's pod restarted): from the start of `etcd …`
// to the exec of etcd-3.7.3, whose place a script takes that records the instant
// (it hands --version and --help to the real binary, which migrate's check runs).
func BenchmarkEtcdLinkNoop(b *testing.B) {
	src := etcdtest.BinDir(b)
	dataDir := etcdtest.CopyDir(b, etcdtest.ExtractFixture(b, fixture34))
	walk := exec.Command(filepath.Join(src, "migrate"), "--data-dir="+dataDir, "--bin-dir="+src, "--bundled-versions="+etcdtest.Bundled,
		"--target-version=3.7.3", "--exec=false", "--name=control-plane-0",
		fmt.Sprintf("--port=%d", etcdtest.FreePort(b)), fmt.Sprintf("--peer-port=%d", etcdtest.FreePort(b)))
	walk.Env = append(os.Environ(), "DO_NOT_MOVE_BINARIES=true")
	if out, err := walk.CombinedOutput(); err != nil {
		b.Fatalf("walk to 3.7.3: %v\n%s", err, out)
	}
	dir := b.TempDir()
	real := filepath.Join(src, "etcd-3.7.3")
	stamp := filepath.Join(dir, "execd")
	script := "#!/bin/sh\nfor a in \"$@\"; do case $a in --version|--help) exec " + real + " \"$@\";; esac; done\ndate +%s%N > " + stamp + "\n"
	if err := os.WriteFile(filepath.Join(dir, "etcd-3.7.3"), []byte(script), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(src, "migrate"), filepath.Join(dir, "etcd")); err != nil {
		b.Fatal(err)
	}
	args := kubeadmArgs(dataDir, etcdtest.FreePort(b), etcdtest.FreePort(b))
	var took []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cmd := etcdCmd(filepath.Join(dir, "etcd"), b.TempDir(), []string{"TARGET_VERSION=3.7.3", "BUNDLED_VERSIONS=3.7.3"}, args...)
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "steps=0") {
			b.Fatalf("no-op run: %v\n%s", err, out)
		}
		s, err := os.ReadFile(stamp)
		if err != nil {
			b.Fatal(err)
		}
		var ns int64
		if _, err := fmt.Sscan(strings.TrimSpace(string(s)), &ns); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Unix(0, ns).Sub(start))
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "ms-to-exec-median")
}
