// Package image builds the etcd-migrate image (images/Dockerfile, through
// hack/image.sh as `make image` does, FROM scratch) out of the real binaries and runs
// it on real data dirs: the 3.4.13/etcd2 fixture migrated to 3.7.3 and served, the
// same run again as a no-op, a rollback to 3.6.16, a non-root UID, and Kubernetes'
// GCE etcd manifest run unchanged (gce_test.go), kubeadm's etcd static pods of both
// eras over TLS and the `docker run IMAGE etcd|etcdctl|etcdutl …` invocations through
// a docker-compatible CLI (kubeadm_test.go). buildah (chroot
// isolation, vfs storage in a temp dir) or docker, whichever works; without either
// the test is skipped and says why.
package image

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/pkg/etcdproc"
	"github.com/etcd-migrate/etcd-migrate/pkg/etcdversion"
)

const (
	fixtureEtcd2 = "etcd2-3.4.13.tar.gz"
	fixtureEtcd3 = "etcd3-3.4.13.tar.gz"
	newest       = "3.7.3"
	// runsEnv repeats the timed etcd2 -> 3.7.3 and no-op runs for medians.
	runsEnv = "ETCD_MIGRATE_IMAGE_RUNS"
)

func TestImage(t *testing.T) {
	toolName, err := pickTool(t)
	if err != nil {
		t.Skipf("SKIPPED: the image test needs buildah or a docker engine: %v", err)
	}
	binDir := etcdtest.BinDir(t)
	tmp := t.TempDir()
	tl := &tool{name: toolName, image: fmt.Sprintf("localhost/etcd-migrate-test:%d", os.Getpid()),
		root: filepath.Join(tmp, "storage"), runroot: filepath.Join(tmp, "run")}
	t.Cleanup(func() { tl.cleanup(t) }) // before TempDir's removal
	ctxDir := filepath.Join(tmp, "context")
	took := tl.build(t, binDir, ctxDir, etcdtest.Bundled)
	t.Logf("image %s built FROM scratch with %s in %v: %s (binaries %s)", tl.image, toolName,
		took.Round(time.Millisecond), tl.size(t), mib(dirBytes(t, filepath.Join(ctxDir, "bin"))))
	checkShellBudget(t, ctxDir)

	t.Run("Config", func(t *testing.T) { testConfig(t, tl) })
	t.Run("Binaries", func(t *testing.T) { testBinaries(t, tl, etcdtest.Bundled) })
	t.Run("ShellAndHelpers", func(t *testing.T) { testShellAndHelpers(t, tl) })
	t.Run("Etcd2To37NoopRollback", func(t *testing.T) { testEtcd2Walk(t, tl, binDir) })
	t.Run("NonRootUID", func(t *testing.T) { testNonRoot(t, tl, binDir) })
	t.Run("GCEManifest", func(t *testing.T) { testGCEManifest(t, tl, binDir) })
	t.Run("Kubeadm", func(t *testing.T) { testKubeadm(t, tl, binDir) })
}

// shellBudget bounds what the image carries for the Kubernetes GCE manifest alone:
// /bin/sh (bash-static, 2.2 MiB in Debian 12) and the two helper scripts.
const shellBudget = 3 << 20

func checkShellBudget(t *testing.T, ctxDir string) {
	t.Helper()
	var total int64
	var parts []string
	for _, p := range []string{"rootfs/bin/sh", "bin/etcd", "bin/migrate-if-needed.sh"} {
		fi, err := os.Lstat(filepath.Join(ctxDir, p)) // bin/etcd is a link to migrate
		if err != nil {
			t.Fatalf("the build context lacks %s: %v", p, err)
		}
		total += fi.Size()
		parts = append(parts, fmt.Sprintf("%s %d B", p, fi.Size()))
	}
	if total > shellBudget {
		t.Errorf("shell and helpers take %s (%s), over the budget of %s", mib(total), strings.Join(parts, ", "), mib(shellBudget))
	}
	t.Logf("shell and helpers for the GCE manifest: %s of a %s budget (%s)", mib(total), mib(shellBudget), strings.Join(parts, ", "))
}

// testConfig: entrypoint migrate, the documented environment defaults, the labels.
func testConfig(t *testing.T, tl *tool) {
	c := tl.config(t)
	if strings.Join(c.Entrypoint, " ") != "/usr/local/bin/migrate" || len(c.Cmd) != 0 {
		t.Errorf("entrypoint %q cmd %q, want [/usr/local/bin/migrate] and no cmd", c.Entrypoint, c.Cmd)
	}
	env := map[string]string{}
	for _, kv := range c.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	for k, want := range map[string]string{
		"BUNDLED_VERSIONS":     etcdtest.Bundled,
		"TARGET_VERSION":       newest,
		"TARGET_STORAGE":       "etcd3",
		"DATA_DIRECTORY":       "/var/etcd/data",
		"DO_NOT_MOVE_BINARIES": "true",
	} {
		if env[k] != want {
			t.Errorf("image env %s=%q, want %q", k, env[k], want)
		}
	}
	if c.User != "" && c.User != "0" && c.User != "root" {
		t.Errorf("image user %q, want root by default (any UID works with --user)", c.User)
	}
	for k, want := range map[string]string{
		"io.etcd-migrate.bundled-versions":       etcdtest.Bundled,
		"io.etcd-migrate.default-target-version": newest,
		"org.opencontainers.image.base.name":     "scratch",
		"org.opencontainers.image.version":       "test",
	} {
		if c.Labels[k] != want {
			t.Errorf("label %s=%q, want %q", k, c.Labels[k], want)
		}
	}
	if l := c.Labels["io.etcd-migrate.shell"]; !strings.HasPrefix(l, "bash-static ") {
		t.Errorf("label io.etcd-migrate.shell=%q, want the bash-static package and version", l)
	}
	if c.Labels["org.opencontainers.image.revision"] == "" {
		t.Errorf("no org.opencontainers.image.revision label")
	}
}

// testBinaries: every bundled binary runs in the image, and etcd/etcdctl/etcdutl
// are the newest version.
func testBinaries(t *testing.T, tl *tool, bundle string) {
	type check struct {
		argv []string
		want string
	}
	var checks []check
	for _, v := range strings.Split(bundle, ",") {
		checks = append(checks, check{[]string{"/usr/local/bin/etcd-" + v, "--version"}, "etcd Version: " + v})
		caps := etcdversion.Of(v)
		switch {
		case strings.HasPrefix(v, "2."):
			checks = append(checks, check{[]string{"/usr/local/bin/etcdctl-" + v, "--version"}, "etcdctl version " + v})
		case !caps.ClusterVersionInBackend:
			// Before 3.4 etcdctl speaks v2 unless told otherwise.
			checks = append(checks, check{[]string{"/usr/local/bin/etcdctl-" + v, "--version"}, "etcdctl version: " + v})
		default:
			checks = append(checks, check{[]string{"/usr/local/bin/etcdctl-" + v, "version"}, "etcdctl version: " + v})
		}
		if caps.Etcdutl {
			checks = append(checks, check{[]string{"/usr/local/bin/etcdutl-" + v, "version"}, "etcdutl version: " + v})
		}
	}
	checks = append(checks,
		check{[]string{"etcd", "--version"}, "etcd Version: " + newest},
		check{[]string{"etcdctl", "version"}, "etcdctl version: " + newest},
		check{[]string{"etcdutl", "version"}, "etcdutl version: " + newest},
		check{[]string{"/usr/local/bin/migrate", "--help"}, "migrate [flags] [-- ETCD-ARGS...]"})
	ctr := tl.oneShotContainer(t, "binaries")
	for _, ch := range checks {
		// As an arbitrary UID: nothing in the image needs root.
		code, out := tl.oneShot(t, ctr, "4321:4321", ch.argv)
		if code != 0 || !strings.Contains(out, ch.want) {
			t.Errorf("%q in the image: exit %d, output %q; want %q", ch.argv, code, out, ch.want)
		}
	}
}

// testShellAndHelpers: what the Kubernetes GCE manifest needs besides migrate, as an
// arbitrary UID in a FROM-scratch image: /bin/sh runs (static), /var/log takes an
// appending redirection, migrate-if-needed.sh returns migrate's exit code (2 for an
// unbundled target), /usr/local/bin/etcd is migrate run as etcd: `--version` goes
// to etcd-$TARGET_VERSION, and a refused migration starts no etcd.
func testShellAndHelpers(t *testing.T, tl *tool) {
	ctr := tl.oneShotContainer(t, "helpers")
	user := "4321:4321"
	sh := func(script string) (int, string) {
		return tl.oneShot(t, ctr, user, []string{"/bin/sh", "-c", script})
	}
	if code, out := sh(`if [ -e /usr/local/bin/migrate-if-needed.sh ]; then echo yes; fi; echo x 1>>/var/log/etcd.log 2>&1 && echo appended`); code != 0 || out != "yes\nappended\n" {
		t.Errorf("/bin/sh in the image: exit %d, output %q", code, out)
	}
	code, out := tl.oneShotWith(t, ctr, runSpec{user: user, env: map[string]string{"TARGET_VERSION": "3.8.0"}},
		[]string{"/usr/local/bin/migrate-if-needed.sh"})
	if code != 2 || !strings.Contains(out, "migrate: error:") {
		t.Errorf("migrate-if-needed.sh with TARGET_VERSION=3.8.0: exit %d, want migrate's 2 and its error line:\n%s", code, out)
	}
	code, out = tl.oneShotWith(t, ctr, runSpec{user: user, env: map[string]string{"TARGET_VERSION": "3.6.16"}},
		[]string{"/usr/local/bin/etcd", "--version"})
	if code != 0 || !strings.Contains(out, "etcd Version: 3.6.16") {
		t.Errorf("etcd --version with TARGET_VERSION=3.6.16: exit %d, output %q; want etcd 3.6.16", code, out)
	}
	// Another patch of a bundled minor runs that minor's bundled release, as migrate does.
	code, out = tl.oneShotWith(t, ctr, runSpec{user: user, env: map[string]string{"TARGET_VERSION": "3.6.2"}},
		[]string{"/usr/local/bin/etcd", "--version"})
	if code != 0 || !strings.Contains(out, "etcd Version: 3.6.16") {
		t.Errorf("etcd --version with TARGET_VERSION=3.6.2: exit %d, output %q; want etcd 3.6.16", code, out)
	}
	// A data dir whose version.txt is not one: etcd (migrate run as etcd) refuses
	// it (exit 2) and starts no etcd.
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "version.txt"), []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out = tl.oneShotWith(t, ctr, runSpec{user: user, mounts: map[string]string{dir: "/var/etcd/data"}},
		[]string{"/usr/local/bin/etcd", "--name", "x", "--data-dir", "/var/etcd/data"})
	if want := "migrate: error:"; code != 2 || !strings.Contains(out, want) || strings.Contains(out, "etcd-version") {
		t.Errorf("etcd on a data dir with a malformed version.txt: exit %d, want 2 and %q, no etcd started:\n%s", code, want, out)
	}
	code, out = tl.oneShotWith(t, ctr, runSpec{user: user, env: map[string]string{"TARGET_VERSION": "3.8.0"}},
		[]string{"/usr/local/bin/etcd", "--version"})
	if code != 2 || !strings.Contains(out, "target version 3.8.0 is not bundled") {
		t.Errorf("etcd with TARGET_VERSION=3.8.0: exit %d, want 2 and a not-bundled line:\n%s", code, out)
	}
}

// served is a container whose exec'd etcd answers.
type served struct {
	c         *container
	clientURL string
	// versionAfter: from the start of `<tool> run` until GET /version names the
	// target; readyAfter: until a linearizable read answers.
	versionAfter, readyAfter time.Duration
	client                   *clientv3.Client
}

// serve starts the image on a data dir with the given env (ETCD_NAME added) and waits
// until the etcd it execs answers as etcd-<version>.
func serve(t *testing.T, tl *tool, name, version string, mounts map[string]string, user string, env map[string]string) *served {
	t.Helper()
	c, url := startMember(t, tl, name, mounts, user, env)
	return waitServed(t, c, url, version, "")
}

// startMember starts the image on a data dir as serve does (the image's entrypoint,
// ETCD_NAME added to env, the migration's ports and the member's loopback URLs after
// `--`) and returns the container and the client URL its etcd will serve.
func startMember(t *testing.T, tl *tool, name string, mounts map[string]string, user string, env map[string]string) (*container, string) {
	t.Helper()
	port, peer, client := etcdtest.FreePort(t), etcdtest.FreePort(t), etcdtest.FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", client)
	e := map[string]string{"ETCD_NAME": "etcd-member"}
	for k, v := range env {
		e[k] = v
	}
	c := tl.start(t, name, runSpec{user: user, mounts: mounts, env: e, args: []string{
		fmt.Sprintf("--port=%d", port), fmt.Sprintf("--peer-port=%d", peer), "--",
		"--listen-client-urls=" + url, "--advertise-client-urls=" + url,
		fmt.Sprintf("--listen-peer-urls=http://127.0.0.1:%d", peer),
	}})
	return c, url
}

// waitServed waits until the container's etcd answers on url as etcd-<version>, then
// until a linearizable read answers. logFile, if set, is a file the container's
// output goes to (a manifest's redirection), shown when it fails.
func waitServed(t *testing.T, c *container, url, version, logFile string) *served {
	t.Helper()
	name := c.name
	more := func() string {
		if logFile == "" {
			return c.log.String()
		}
		b, _ := os.ReadFile(logFile)
		return fmt.Sprintf("%s\n--- %s:\n%s", c.log, logFile, b)
	}
	s := &served{c: c, clientURL: url}
	deadline := c.started.Add(3 * time.Minute)
	for s.versionAfter == 0 {
		v, err := etcdproc.GetVersions(context.Background(), url)
		if err == nil && v.Server == version {
			s.versionAfter = time.Since(c.started)
			break
		}
		if c.exited() {
			code, _ := c.wait(t, 0)
			t.Fatalf("container %s exited (%d) instead of serving etcd %s:\n%s", name, code, version, more())
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s: no etcd %s on %s (last %+v, %v):\n%s", name, version, url, v, err, more())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cl, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	s.client = cl
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cl.Get(ctx, "image-test-ready")
		cancel()
		if err == nil {
			s.readyAfter = time.Since(c.started)
			return s
		}
		if c.exited() || time.Now().After(deadline) {
			t.Fatalf("container %s: etcd %s does not answer reads: %v\n%s", name, version, err, more())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *served) dump(t *testing.T) etcdtest.Dump {
	t.Helper()
	return (&etcdtest.Server{Client: s.client}).DumpAll(t)
}

// checkExec: the container's etcd is etcd-<version> from the image, the process
// migrate became (no migrate left), running as uid.
func (s *served) checkExec(t *testing.T, version string, uid int) {
	t.Helper()
	pid, exe, gotUID := s.c.etcdProcess(t)
	if !strings.HasSuffix(exe, "/usr/local/bin/etcd-"+version) {
		t.Errorf("container etcd (pid %d) runs %s, want /usr/local/bin/etcd-%s", pid, exe, version)
	}
	if gotUID != uid {
		t.Errorf("container etcd runs as uid %d, want %d", gotUID, uid)
	}
	if s.c.tl.name == "buildah" {
		for _, p := range descendants(s.c.cmd.Process.Pid) {
			if e, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", p)); strings.HasSuffix(e, "/migrate") {
				t.Errorf("a migrate process (pid %d) is still running beside etcd: it should have exec'd", p)
			}
		}
	}
	if want := "msg=exec binary=/usr/local/bin/etcd-" + version; !strings.Contains(s.c.log.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, s.c.log)
	}
}

func runs(t *testing.T) int {
	n, err := strconv.Atoi(os.Getenv(runsEnv))
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// testEtcd2Walk: TARGET_VERSION=3.7.3 on the 3.4.13/etcd2 fixture, mounted the way a
// static pod mounts it (hostPath /var/etcd, data in /var/etcd/data), migrates and
// execs etcd 3.7.3 serving every fixture key; the same env again is a no-op that
// starts etcd at once; TARGET_VERSION=3.6.16 rolls back and serves the same keyspace.
func testEtcd2Walk(t *testing.T, tl *tool, binDir string) {
	fixture := etcdtest.ExtractFixture(t, fixtureEtcd2)
	v2 := etcdtest.DumpV2(t, etcdtest.ServeV2(t, binDir, "3.4.13", etcdtest.CopyDir(t, fixture)).ClientURL)
	var migrateTimes, noopTimes, migrateVersion, noopVersion []time.Duration
	for i := range runs(t) {
		varEtcd := filepath.Join(t.TempDir(), "var-etcd")
		if err := os.MkdirAll(varEtcd, 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("cp", "-a", fixture, filepath.Join(varEtcd, "data")).CombinedOutput(); err != nil {
			t.Fatalf("copy fixture: %v: %s", err, out)
		}
		dataDir := filepath.Join(varEtcd, "data")
		mounts := map[string]string{varEtcd: "/var/etcd"}
		env := map[string]string{"TARGET_VERSION": newest}

		s := serve(t, tl, fmt.Sprintf("etcd2-to-37-%d", i), newest, mounts, "", env)
		migrateTimes, migrateVersion = append(migrateTimes, s.readyAfter), append(migrateVersion, s.versionAfter)
		s.checkExec(t, newest, 0)
		got := s.dump(t)
		keys := compareV2(t, v2, got, s.c.started)
		if v := readFile(t, filepath.Join(dataDir, "version.txt")); v != newest+"/etcd3\n" {
			t.Errorf("version.txt after the walk = %q", v)
		}
		if v := readFile(t, filepath.Join(varEtcd, "data.bak", "version.txt")); v != "3.4.13/etcd2\n" {
			t.Errorf("backup's version.txt = %q, want the fixture's 3.4.13/etcd2", v)
		}
		for _, l := range []string{"kind=v2-to-v3", "msg=\"migration done\" version_txt=3.7.3/etcd3 steps=4"} {
			if !strings.Contains(s.c.log.String(), l) {
				t.Errorf("walk log lacks %q:\n%s", l, s.c.log)
			}
		}
		s.c.stop(t)
		if t.Failed() {
			return
		}
		if i == 0 {
			t.Logf("3.4.13/etcd2 -> 3.7.3 in the container: etcd %s served %d keys (every live v2 key, same values and revisions); %s run to /version %v, to a read %v",
				newest, keys, tl.name, s.versionAfter.Round(time.Millisecond), s.readyAfter.Round(time.Millisecond))
		}

		// The same env again: nothing to do, etcd at once.
		n := serve(t, tl, fmt.Sprintf("noop-%d", i), newest, mounts, "", env)
		noopTimes, noopVersion = append(noopTimes, n.readyAfter), append(noopVersion, n.versionAfter)
		n.checkExec(t, newest, 0)
		if d := etcdtest.Compare(got, n.dump(t), 10); len(d) > 0 {
			t.Errorf("no-op run serves another keyspace:\n%s", strings.Join(d, "\n"))
		}
		log := n.c.log.String()
		if !strings.Contains(log, "steps=0") || strings.Contains(log, "backup written") || strings.Contains(log, "step done") {
			t.Errorf("second run with the same env was not a no-op:\n%s", log)
		}
		n.c.stop(t)
		if i == 0 {
			t.Logf("no-op run: %s run to /version %v, to a read %v", tl.name, n.versionAfter.Round(time.Millisecond), n.readyAfter.Round(time.Millisecond))
		}
		if i > 0 {
			continue
		}

		// Rollback to 3.6.16: the downgrade keeps every key, revision and lease.
		r := serve(t, tl, "rollback-36", "3.6.16", mounts, "", map[string]string{"TARGET_VERSION": "3.6.16"})
		r.checkExec(t, "3.6.16", 0)
		if d := etcdtest.Compare(got, r.dump(t), 10); len(d) > 0 {
			t.Errorf("after the rollback to 3.6.16 the keyspace differs:\n%s", strings.Join(d, "\n"))
		}
		if v, err := etcdproc.GetVersions(context.Background(), r.clientURL); err != nil || v.Cluster != "3.6.0" || v.Storage != "3.6.0" {
			t.Errorf("after the rollback: versions %+v, %v; want cluster and storage 3.6.0", v, err)
		}
		if v := readFile(t, filepath.Join(dataDir, "version.txt")); v != "3.6.16/etcd3\n" {
			t.Errorf("version.txt after the rollback = %q", v)
		}
		if !strings.Contains(r.c.log.String(), "kind=rollback-minor") {
			t.Errorf("rollback log lacks kind=rollback-minor:\n%s", r.c.log)
		}
		t.Logf("rollback 3.7.3 -> 3.6.16 in the container: etcd 3.6.16 answered after %v with the same keyspace", r.readyAfter.Round(time.Millisecond))
		r.c.stop(t)
	}
	if len(migrateTimes) > 1 {
		t.Logf("medians of %d runs, `%s run` to a linearizable read (to /version): 3.4.13/etcd2 -> 3.7.3 %v (%v) %v; no-op %v (%v) %v",
			len(migrateTimes), tl.name, median(migrateTimes), median(migrateVersion), rounded(migrateTimes),
			median(noopTimes), median(noopVersion), rounded(noopTimes))
	}
}

// testNonRoot: a container as UID 1234 with only the data dir mounted (docker run
// -v data:/var/etcd/data), owned by 1234; TARGET_VERSION from the image's default.
// The data dir is a mount of its own, so the backup goes inside it, where it
// survives the container (.etcd-migrate-backup); every file in the data dir stays
// 1234's; the keyspace is the fixture's, revisions included.
func testNonRoot(t *testing.T, tl *tool, binDir string) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: chown of the data dir to UID 1234 needs root")
	}
	fixture := etcdtest.ExtractFixture(t, fixtureEtcd3)
	base := etcdtest.Serve(t, binDir, "3.4.13", etcdtest.CopyDir(t, fixture))
	want := base.DumpAll(t)
	base.Stop()

	host := t.TempDir()
	dataDir := filepath.Join(host, "data")
	if out, err := exec.Command("cp", "-a", fixture, dataDir).CombinedOutput(); err != nil {
		t.Fatalf("copy fixture: %v: %s", err, out)
	}
	if out, err := exec.Command("chown", "-R", "1234:1234", dataDir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v: %s", err, out)
	}
	s := serve(t, tl, "nonroot", newest, map[string]string{dataDir: "/var/etcd/data"}, "1234:1234", nil)
	s.checkExec(t, newest, 1234)
	if d := etcdtest.Compare(want, s.dump(t), 10); len(d) > 0 {
		t.Errorf("as UID 1234, 3.4.13 -> 3.7.3 changed the keyspace:\n%s", strings.Join(d, "\n"))
	}
	if !strings.Contains(s.c.log.String(), `msg="backup written" path=/var/etcd/data/.etcd-migrate-backup/data.bak`) {
		t.Errorf("no backup inside the mounted data dir:\n%s", s.c.log)
	}
	s.c.stop(t)
	if v := readFile(t, filepath.Join(dataDir, ".etcd-migrate-backup", "data.bak", "version.txt")); v != "3.4.13/etcd3\n" {
		t.Errorf("the backup inside the data dir records %q, want the data before the walk (3.4.13/etcd3)", v)
	}
	ownerCheck(t, dataDir, 1234)
	if entries, _ := os.ReadDir(host); len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("the container wrote beside the mounted data dir on the host: %q", names)
	}
	t.Logf("UID 1234, data dir alone mounted: 3.4.13 -> %s (image default TARGET_VERSION) in %v, keyspace identical", newest, s.readyAfter.Round(time.Millisecond))
}

// compareV2 checks the served v3 keyspace against the fixture's v2 keyspace: every
// v2 key without a TTL is a v3 key with the same value, create_revision =
// createdIndex and mod_revision = modifiedIndex; a key that had expired before the
// run is gone; nothing else exists. It returns the number of v3 keys.
func compareV2(t *testing.T, v2 map[string]etcdtest.V2Node, got etcdtest.Dump, runAt time.Time) int {
	t.Helper()
	var diffs []string
	for k, n := range v2 {
		g, ok := got.Keys[k]
		switch {
		case n.Dir:
			if ok {
				diffs = append(diffs, fmt.Sprintf("v2 directory %q became a key", k))
			}
		case n.Expiration.IsZero():
			if !ok {
				diffs = append(diffs, fmt.Sprintf("key %q lost", k))
			} else if g.Value != n.Value || g.CreateRevision != int64(n.CreatedIndex) || g.ModRevision != int64(n.ModifiedIndex) {
				diffs = append(diffs, fmt.Sprintf("key %q: v2 created=%d modified=%d, v3 create=%d mod=%d, values equal %v",
					k, n.CreatedIndex, n.ModifiedIndex, g.CreateRevision, g.ModRevision, g.Value == n.Value))
			}
		case n.Expiration.Before(runAt.Add(-3 * time.Second)):
			if ok {
				diffs = append(diffs, fmt.Sprintf("key %q expired at %v but was resurrected", k, n.Expiration))
			}
		}
	}
	for k := range got.Keys {
		if n, ok := v2[k]; !ok || n.Dir {
			diffs = append(diffs, fmt.Sprintf("key %q appeared", k))
		}
	}
	if len(got.Keys) == 0 {
		diffs = append(diffs, "no keys served")
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		if len(diffs) > 20 {
			diffs = diffs[:20]
		}
		t.Errorf("served keyspace differs from the fixture's v2 keyspace:\n%s", strings.Join(diffs, "\n"))
	}
	return len(got.Keys)
}

func ownerCheck(t *testing.T, dir string, uid int) {
	t.Helper()
	out, err := exec.Command("find", dir, "!", "-uid", strconv.Itoa(uid)).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("files in %s not owned by %d: %v %s", dir, uid, err, out)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Error(err)
	}
	return string(b)
}

func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2].Round(time.Millisecond)
}

func rounded(d []time.Duration) []time.Duration {
	out := make([]time.Duration, len(d))
	for i, x := range d {
		out[i] = x.Round(time.Millisecond)
	}
	return out
}
