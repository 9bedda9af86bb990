package image

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// tool builds and runs the image with buildah (storage in a temp dir, vfs, chroot
// isolation: works without a container engine) or docker.
type tool struct {
	name  string // "buildah" or "docker"
	image string
	// buildah only
	root, runroot string
	// docker only: container names to remove at cleanup
	mu    sync.Mutex
	names []string
}

// toolEnv is what hack/image.sh needs to use the same tool and storage as the test.
func (tl *tool) toolEnv() []string {
	env := []string{"IMAGE_TOOL=" + tl.name}
	if tl.name == "buildah" {
		env = append(env, "BUILDAH_ROOT="+tl.root, "BUILDAH_RUNROOT="+tl.runroot,
			"BUILDAH_STORAGE_DRIVER=vfs", "BUILDAH_ISOLATION=chroot")
	}
	return env
}

// pickTool asks hack/image.sh which tool it would use; exit 3 means none.
func pickTool(t *testing.T) (string, error) {
	cmd := exec.Command(filepath.Join(etcdtest.RepoRoot(), "hack", "image.sh"), "tool")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 3 {
		return "", errors.New(strings.TrimSpace(errb.String()))
	}
	if err != nil {
		t.Fatalf("hack/image.sh tool: %v: %s", err, errb.String())
	}
	return strings.TrimSpace(out.String()), nil
}

func (tl *tool) cmd(args ...string) *exec.Cmd {
	if tl.name == "buildah" {
		g := []string{"--root", tl.root, "--runroot", tl.runroot, "--storage-driver", "vfs"}
		return exec.Command("buildah", append(g, args...)...)
	}
	return exec.Command("docker", args...)
}

func (tl *tool) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := tl.cmd(args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", tl.name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// build runs hack/image.sh build FROM scratch with the test's binaries of the
// bundle (comma separated).
func (tl *tool) build(t *testing.T, binDir, contextDir, bundle string) time.Duration {
	t.Helper()
	cmd := exec.Command(filepath.Join(etcdtest.RepoRoot(), "hack", "image.sh"), "build")
	cmd.Env = append(os.Environ(), tl.toolEnv()...)
	cmd.Env = append(cmd.Env,
		"IMAGE="+tl.image, "ARCH="+runtime.GOARCH, "BIN_DIR="+binDir,
		"BUNDLED_VERSIONS="+bundle, "BASE_IMAGE=scratch", "CONTEXT_DIR="+contextDir,
		"IMAGE_VERSION=test")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("hack/image.sh build: %v\n%s", err, out)
	}
	return time.Since(start)
}

// imageConfig is the part of the OCI image config the test checks.
type imageConfig struct {
	Entrypoint []string          `json:"Entrypoint"`
	Cmd        []string          `json:"Cmd"`
	Env        []string          `json:"Env"`
	Labels     map[string]string `json:"Labels"`
	User       string            `json:"User"`
}

func (tl *tool) config(t *testing.T) imageConfig {
	t.Helper()
	var c imageConfig
	switch tl.name {
	case "buildah":
		var d struct {
			OCIv1 struct {
				Config imageConfig `json:"config"`
			} `json:"OCIv1"`
		}
		if err := json.Unmarshal([]byte(tl.run(t, "inspect", "--type", "image", tl.image)), &d); err != nil {
			t.Fatal(err)
		}
		c = d.OCIv1.Config
	default:
		if err := json.Unmarshal([]byte(tl.run(t, "image", "inspect", "--format", "{{json .Config}}", tl.image)), &c); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// size is the image's size as the tool reports it.
func (tl *tool) size(t *testing.T) string {
	t.Helper()
	if tl.name == "buildah" {
		var list []struct {
			Size string `json:"size"`
		}
		if err := json.Unmarshal([]byte(tl.run(t, "images", "--json", tl.image)), &list); err != nil || len(list) != 1 {
			t.Fatalf("buildah images --json %s: %v", tl.image, err)
		}
		return list[0].Size
	}
	n, _ := strconv.ParseInt(tl.run(t, "image", "inspect", "--format", "{{.Size}}", tl.image), 10, 64)
	return fmt.Sprintf("%.0f MB", float64(n)/1e6)
}

func (tl *tool) cleanup(t *testing.T) {
	switch tl.name {
	case "buildah":
		_ = tl.cmd("rm", "--all").Run()
		_ = tl.cmd("rmi", "--all", "--force").Run()
	default:
		tl.mu.Lock()
		names := append([]string(nil), tl.names...)
		tl.mu.Unlock()
		for _, n := range names {
			_ = tl.cmd("rm", "-f", n).Run()
		}
		_ = tl.cmd("rmi", "-f", tl.image).Run()
	}
}

// runSpec is one container run.
type runSpec struct {
	user   string            // "uid:gid", "" = the image's (root)
	mounts map[string]string // host path -> container path
	env    map[string]string // added to the image's environment
	// entrypoint overrides the image's; args follow it (docker run IMAGE ARGS...).
	entrypoint []string
	args       []string
}

// container is a running (or finished) container.
type container struct {
	tl      *tool
	name    string // buildah working container or docker container name
	cmd     *exec.Cmd
	started time.Time
	log     *etcdtest.SyncBuffer
	done    chan struct{}
	err     error
}

// start runs spec in a new container from the image: for buildah a fresh working
// container and `buildah run` with the image's entrypoint spelled out (buildah run
// does not apply it), for docker `docker run`. The container runs in its own process
// group so stop can end everything in it.
func (tl *tool) start(t *testing.T, name string, spec runSpec) *container {
	t.Helper()
	cfg := tl.config(t)
	c := &container{tl: tl, log: &etcdtest.SyncBuffer{}, done: make(chan struct{})}
	var argv []string
	switch tl.name {
	case "buildah":
		c.name = tl.run(t, "from", "--name", name, tl.image)
		argv = []string{"run", "--isolation", "chroot"}
		if spec.user != "" {
			argv = append(argv, "--user", spec.user)
		}
		for h, cp := range spec.mounts {
			argv = append(argv, "-v", h+":"+cp)
		}
		for _, k := range sortedKeys(spec.env) {
			argv = append(argv, "--env", k+"="+spec.env[k])
		}
		ep := cfg.Entrypoint
		if spec.entrypoint != nil {
			ep = spec.entrypoint
		}
		argv = append(append(append(argv, c.name, "--"), ep...), spec.args...)
	default:
		c.name = fmt.Sprintf("%s-%d", name, os.Getpid())
		tl.mu.Lock()
		tl.names = append(tl.names, c.name)
		tl.mu.Unlock()
		argv = []string{"run", "--rm", "--name", c.name, "--network", "host"}
		if spec.user != "" {
			argv = append(argv, "--user", spec.user)
		}
		for h, cp := range spec.mounts {
			argv = append(argv, "-v", h+":"+cp)
		}
		for _, k := range sortedKeys(spec.env) {
			argv = append(argv, "-e", k+"="+spec.env[k])
		}
		if spec.entrypoint != nil {
			argv = append(argv, "--entrypoint", spec.entrypoint[0])
			spec.args = append(append([]string(nil), spec.entrypoint[1:]...), spec.args...)
		}
		argv = append(append(argv, tl.image), spec.args...)
	}
	c.cmd = tl.cmd(argv...)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.started = time.Now()
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("%s %s: %v", tl.name, strings.Join(argv, " "), err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() { c.stop(t) })
	return c
}

// oneShotContainer is a container for oneShot: a buildah working container (removed
// at cleanup); docker needs none.
func (tl *tool) oneShotContainer(t *testing.T, name string) string {
	t.Helper()
	if tl.name != "buildah" {
		return ""
	}
	ctr := tl.run(t, "from", "--name", name, tl.image)
	t.Cleanup(func() { _ = tl.cmd("rm", ctr).Run() })
	return ctr
}

// oneShot runs argv in the image (in ctr for buildah) as user and returns its exit
// code and output.
func (tl *tool) oneShot(t *testing.T, ctr, user string, argv []string) (int, string) {
	t.Helper()
	return tl.oneShotWith(t, ctr, runSpec{user: user}, argv)
}

// oneShotWith is oneShot with spec's user, env and mounts (its entrypoint and args
// are not used: argv is the command).
func (tl *tool) oneShotWith(t *testing.T, ctr string, spec runSpec, argv []string) (int, string) {
	t.Helper()
	var opts []string
	if spec.user != "" {
		opts = append(opts, "--user", spec.user)
	}
	for h, cp := range spec.mounts {
		opts = append(opts, "-v", h+":"+cp)
	}
	for _, k := range sortedKeys(spec.env) {
		opts = append(opts, "--env", k+"="+spec.env[k])
	}
	var cmd *exec.Cmd
	if tl.name == "buildah" {
		cmd = tl.cmd(append(append(append([]string{"run", "--isolation", "chroot"}, opts...), ctr, "--"), argv...)...)
	} else {
		cmd = tl.cmd(append(append(append([]string{"run", "--rm"}, opts...), "--entrypoint", argv[0], tl.image), argv[1:]...)...)
	}
	return runExit(t, cmd)
}

// execIn runs argv inside the running container c, as a kubelet runs an exec probe:
// with the container's environment (buildah run does not keep it: env repeats it).
func (tl *tool) execIn(t *testing.T, c *container, env map[string]string, argv []string) (int, string) {
	t.Helper()
	var cmd *exec.Cmd
	if tl.name == "buildah" {
		args := []string{"run", "--isolation", "chroot"}
		for _, k := range sortedKeys(env) {
			args = append(args, "--env", k+"="+env[k])
		}
		cmd = tl.cmd(append(append(args, c.name, "--"), argv...)...)
	} else {
		cmd = tl.cmd(append([]string{"exec", c.name}, argv...)...)
	}
	return runExit(t, cmd)
}

// runExit runs cmd and returns its exit code and combined output.
func runExit(t *testing.T, cmd *exec.Cmd) (int, string) {
	t.Helper()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	case err != nil:
		t.Fatalf("%s: %v", strings.Join(cmd.Args, " "), err)
	}
	return 0, string(out)
}

// wait waits for a container that is expected to exit by itself.
func (c *container) wait(t *testing.T, timeout time.Duration) (int, string) {
	t.Helper()
	if !c.exited() {
		select {
		case <-c.done:
		case <-time.After(timeout):
			t.Fatalf("container %s still running after %v:\n%s", c.name, timeout, c.log)
		}
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(c.err, &ee) {
		code = ee.ExitCode()
	} else if c.err != nil {
		t.Fatalf("container %s: %v", c.name, c.err)
	}
	return code, c.log.String()
}

func (c *container) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop ends the container: the exec'd etcd keeps serving until told. SIGTERM to the
// run's process group (buildah run and everything in the container; docker: docker
// stop), SIGKILL after 15 s; then the container is removed.
func (c *container) stop(t *testing.T) {
	if !c.exited() {
		if c.tl.name == "docker" {
			_ = c.tl.cmd("stop", "-t", "10", c.name).Run()
		} else {
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
		}
		select {
		case <-c.done:
		case <-time.After(15 * time.Second):
			t.Logf("container %s did not stop on SIGTERM; killing it", c.name)
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
			if c.tl.name == "docker" {
				_ = c.tl.cmd("rm", "-f", c.name).Run()
			}
			<-c.done
		}
	}
	if c.tl.name == "buildah" {
		_ = c.tl.cmd("rm", c.name).Run()
	}
}

// etcdProcess finds the container's etcd process on the host: its PID, executable
// and UID. With buildah it is a descendant of buildah run; with docker the
// container's main process.
func (c *container) etcdProcess(t *testing.T) (pid int, exe string, uid int) {
	t.Helper()
	var pids []int
	if c.tl.name == "docker" {
		p, err := strconv.Atoi(c.tl.run(t, "inspect", "--format", "{{.State.Pid}}", c.name))
		if err != nil {
			t.Fatal(err)
		}
		pids = []int{p}
	} else {
		pids = descendants(c.cmd.Process.Pid)
	}
	for _, p := range pids {
		e, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p))
		if err != nil || !strings.Contains(filepath.Base(e), "etcd-") {
			continue
		}
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(status), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "Uid:" {
				uid, _ = strconv.Atoi(f[1])
			}
		}
		return p, e, uid
	}
	t.Fatalf("no etcd process in container %s", c.name)
	return 0, "", 0
}

// descendants lists every process below pid.
func descendants(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut after the last ')'.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], p)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, ch := range children[p] {
			out = append(out, ch)
			queue = append(queue, ch)
		}
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
