// Package manifest checks testdata/etcd.manifest.yaml, the static pod that runs the
// image: it decodes strictly as a core/v1 Pod, and each container's command and
// environment (on top of the image's ENV from images/Dockerfile) are what migrate
// accepts, parsed by migrate's own flag and environment code (cmd/migrate/app), and
// agree with the etcd arguments after "--" and with the pod's ports, probes and
// volumes. It is a module of its own so that k8s.io/api stays out of the main go.mod.
package manifest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/etcd-migrate/etcd-migrate/cmd/migrate/app"
	"github.com/etcd-migrate/etcd-migrate/pkg/migrate"
	"github.com/etcd-migrate/etcd-migrate/pkg/steps"
)

const entrypoint = "/usr/local/bin/migrate"

func repoRoot() string { return filepath.Join("..", "..") }

func loadPod(t *testing.T) corev1.Pod {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(), "testdata", "etcd.manifest.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	// Strict: an unknown or duplicate field is an error, as kubelet's strict decoding
	// would warn about and a typo would silently drop.
	if err := yaml.UnmarshalStrict(raw, &pod); err != nil {
		t.Fatalf("testdata/etcd.manifest.yaml is not a strict v1.Pod: %v", err)
	}
	return pod
}

// TestStrictDecodeRejectsTypos: the decoding the test relies on does refuse a
// misspelt field, so a typo in the manifest cannot pass unnoticed.
func TestStrictDecodeRejectsTypos(t *testing.T) {
	var pod corev1.Pod
	bad := "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: etcd\n    evn:\n    - {name: TARGET_VERSION, value: 3.7.3}\n"
	if err := yaml.UnmarshalStrict([]byte(bad), &pod); err == nil || !strings.Contains(err.Error(), "evn") {
		t.Errorf("strict decoding accepted a misspelt field: %v", err)
	}
}

func TestManifest(t *testing.T) {
	pod := loadPod(t)
	if pod.APIVersion != "v1" || pod.Kind != "Pod" || pod.Namespace != "kube-system" {
		t.Errorf("apiVersion %q kind %q namespace %q, want v1 Pod in kube-system", pod.APIVersion, pod.Kind, pod.Namespace)
	}
	if !pod.Spec.HostNetwork {
		t.Errorf("hostNetwork is false: the API server reaches etcd on the node's loopback")
	}
	if len(pod.Spec.Containers) != 2 {
		t.Fatalf("%d containers, want etcd and event etcd", len(pod.Spec.Containers))
	}
	imageEnv := dockerfileEnv(t)
	bins := binDir(t)
	owner := map[int]string{} // port -> what binds it, across both containers
	portNames := map[string]bool{}
	dataDirs := map[string]bool{}
	for _, c := range pod.Spec.Containers {
		t.Run(c.Name, func(t *testing.T) {
			cc := checkContainer(t, pod, c, imageEnv, bins)
			// hostNetwork: both containers share the node's ports, during the
			// migration (private client and peer ports) and after it.
			for p, what := range cc.ports {
				if other, ok := owner[p]; ok {
					t.Errorf("port %d: %s (%s) collides with %s", p, what, c.Name, other)
				}
				owner[p] = what + " of " + c.Name
			}
			if dataDirs[cc.dataDir] {
				t.Errorf("data dir %s is used by two containers", cc.dataDir)
			}
			dataDirs[cc.dataDir] = true
		})
		for _, p := range c.Ports {
			if portNames[p.Name] {
				t.Errorf("port name %q used twice in the pod", p.Name)
			}
			portNames[p.Name] = true
		}
	}
	var names []string
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	t.Logf("%s: containers %s; ports in use %d", pod.Name, strings.Join(names, ", "), len(owner))
}

type containerCheck struct {
	dataDir string
	ports   map[int]string
}

func checkContainer(t *testing.T, pod corev1.Pod, c corev1.Container, imageEnv map[string]string, bins string) containerCheck {
	t.Helper()
	// The command is the image's entrypoint and its arguments (args follow command,
	// as the kubelet runs them).
	argv := append(append([]string(nil), c.Command...), c.Args...)
	if len(c.Command) == 0 || c.Command[0] != entrypoint {
		t.Fatalf("command %q does not start with the image's entrypoint %s", c.Command, entrypoint)
	}
	for _, a := range argv {
		if strings.Contains(a, "$(") {
			t.Errorf("argument %q uses $(VAR) expansion: the kubelet substitutes it into one argument", a)
		}
	}
	env := map[string]string{}
	for k, v := range imageEnv {
		env[k] = v
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			t.Errorf("env %s uses valueFrom: give a value, the test resolves literal values only", e.Name)
		}
		env[e.Name] = e.Value
	}

	inv, err := app.Parse(argv[1:], func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("migrate refuses the command line %q with this env: %v (exit code 2: %v)", argv[1:], err, app.IsUsageError(err))
	}
	cfg := inv.Config
	if !inv.Exec {
		t.Errorf("--exec=false: the container would exit after migrating")
	}
	// The target is bundled: the planner can reach it from an empty data dir.
	if _, err := steps.Plan(nil, cfg.Target, cfg.Bundled); err != nil {
		t.Errorf("target %s: %v", cfg.Target, err)
	}
	etcdArgs := migrate.EtcdArgs(cfg.DataDir, inv.EtcdArgs)
	if v, _ := flagValue(etcdArgs, "data-dir"); v != cfg.DataDir {
		t.Errorf("exec'd etcd serves data dir %q, migrate migrates %q", v, cfg.DataDir)
	}

	// The member migrate's steps run is the one etcd serves.
	name := env["ETCD_NAME"]
	if v, ok := flagValue(etcdArgs, "name"); ok {
		name = v
	}
	for _, m := range []struct{ what, migrate, flag string }{
		{"member name (--name / ETCD_NAME, ETCD_HOSTNAME)", cfg.Name, name},
		{"initial cluster (INITIAL_CLUSTER)", cfg.InitialCluster, mustFlag(t, etcdArgs, "initial-cluster")},
		{"peer URLs (LISTEN_PEER_URLS)", cfg.ListenPeerURLs, mustFlag(t, etcdArgs, "listen-peer-urls")},
		{"advertised peer URLs (INITIAL_ADVERTISE_PEER_URLS)", cfg.InitialAdvertisePeerURLs, mustFlag(t, etcdArgs, "initial-advertise-peer-urls")},
	} {
		if m.migrate != m.flag {
			t.Errorf("%s: migrate's steps use %q, the exec'd etcd %q", m.what, m.migrate, m.flag)
		}
	}
	// Peer TLS: every ETCD_CREDS flag the steps' etcd gets, the served etcd has too.
	if len(cfg.ExtraArgs) == 0 && strings.HasPrefix(cfg.ListenPeerURLs, "https") {
		t.Errorf("https peer URLs but no ETCD_CREDS: the steps' etcd would have no peer certificate")
	}
	for _, a := range cfg.ExtraArgs {
		if !slices.Contains(etcdArgs, a) {
			t.Errorf("ETCD_CREDS flag %q is not among the exec'd etcd's arguments", a)
		}
	}
	// Every flag is one etcd knows: the exec'd etcd-<target>, and ETCD_CREDS for every
	// bundled etcd a step may run.
	known := etcdFlags(t, bins, cfg.Target.Version.String())
	for _, f := range flagNames(etcdArgs) {
		if !known[f] {
			t.Errorf("etcd %s has no flag --%s", cfg.Target.Version, f)
		}
	}
	for _, v := range cfg.Bundled {
		k := etcdFlags(t, bins, v.String())
		for _, f := range flagNames(cfg.ExtraArgs) {
			if !k[f] {
				t.Errorf("ETCD_CREDS: etcd %s (a step may run it) has no flag --%s", v, f)
			}
		}
	}
	// etcd refuses to start when an ETCD_<FLAG> variable and --<flag> are both set.
	for k := range env {
		if f, ok := strings.CutPrefix(k, "ETCD_"); ok && slices.Contains(flagNames(etcdArgs), strings.ReplaceAll(strings.ToLower(f), "_", "-")) {
			t.Errorf("env %s and the etcd flag --%s are both set: etcd exits (\"conflicting environment variable\")", k, strings.ToLower(f))
		}
	}

	// Volumes: the certificates are mounted, and the data dir's parent is a writable
	// mount (migrate's lock file and backup live beside the data dir).
	mountOf := func(p string) *corev1.VolumeMount {
		var best *corev1.VolumeMount
		for i, m := range c.VolumeMounts {
			if (p == m.MountPath || strings.HasPrefix(p, strings.TrimSuffix(m.MountPath, "/")+"/")) && (best == nil || len(m.MountPath) > len(best.MountPath)) {
				best = &c.VolumeMounts[i]
			}
		}
		return best
	}
	for _, a := range etcdArgs {
		if f, v, ok := strings.Cut(strings.TrimLeft(a, "-"), "="); ok && strings.HasSuffix(f, "-file") && mountOf(v) == nil {
			t.Errorf("--%s=%s is not under any volumeMount", f, v)
		}
	}
	if m := mountOf(filepath.Dir(cfg.DataDir)); m == nil || m.ReadOnly {
		t.Errorf("the data dir's parent %s is not on a writable volumeMount: the data, the lock file and the backup would not survive the container", filepath.Dir(cfg.DataDir))
	} else if !hasHostPath(pod, m.Name) {
		t.Errorf("volume %s of the data dir is not a hostPath", m.Name)
	}

	// Ports: what the exec'd etcd listens on is what the container declares, and the
	// probes ask etcd's client URL.
	clientPorts := urlPorts(t, mustFlag(t, etcdArgs, "listen-client-urls"))
	peerPorts := urlPorts(t, mustFlag(t, etcdArgs, "listen-peer-urls"))
	declared := map[int]bool{}
	for _, p := range c.Ports {
		declared[int(p.ContainerPort)] = true
		if p.HostPort != 0 && p.HostPort != p.ContainerPort {
			t.Errorf("port %s: hostPort %d != containerPort %d on the host network", p.Name, p.HostPort, p.ContainerPort)
		}
		if len(p.Name) > 15 {
			t.Errorf("port name %q is longer than 15 characters", p.Name)
		}
		if !slices.Contains(clientPorts, int(p.ContainerPort)) && !slices.Contains(peerPorts, int(p.ContainerPort)) {
			t.Errorf("declared port %d (%s) is neither a client nor a peer port of etcd", p.ContainerPort, p.Name)
		}
	}
	for _, p := range append(append([]int(nil), clientPorts...), peerPorts...) {
		if !declared[p] {
			t.Errorf("etcd listens on %d but the container does not declare it", p)
		}
	}
	for _, pr := range []struct {
		what  string
		probe *corev1.Probe
	}{{"livenessProbe", c.LivenessProbe}, {"startupProbe", c.StartupProbe}} {
		if pr.probe == nil || pr.probe.HTTPGet == nil {
			t.Errorf("no HTTP %s", pr.what)
			continue
		}
		g := pr.probe.HTTPGet
		if g.Path != "/health" || g.Host != "127.0.0.1" || !slices.Contains(clientPorts, g.Port.IntValue()) {
			t.Errorf("%s asks http://%s:%s%s, not etcd's /health on a loopback client port %v", pr.what, g.Host, g.Port.String(), g.Path, clientPorts)
		}
	}
	// The startup probe must outlast a migration: etcd answers only after it.
	if sp := c.StartupProbe; sp != nil && sp.PeriodSeconds*sp.FailureThreshold < 300 {
		t.Errorf("startupProbe allows %ds: a migration may take minutes", sp.PeriodSeconds*sp.FailureThreshold)
	}

	ports := map[int]string{}
	add := func(what string, p int) {
		if other, ok := ports[p]; ok && other != what {
			// The steps' peer port is the served etcd's peer port, by design:
			// the steps stop before the exec.
			if !(strings.Contains(other, "peer") && strings.Contains(what, "peer")) {
				t.Errorf("port %d used for %s and %s", p, other, what)
			}
		}
		ports[p] = what
	}
	for _, p := range urlPorts(t, cfg.ClientURL) {
		add("migrate's private client port", p)
	}
	for _, p := range urlPorts(t, cfg.ListenPeerURLs) {
		add("migrate's steps' peer port", p)
	}
	for _, p := range clientPorts {
		add("etcd client port", p)
	}
	for _, p := range peerPorts {
		add("etcd peer port", p)
	}
	t.Logf("migrate %s: %s -> exec etcd-%s %s", cfg.DataDir, cfg.Target, cfg.Target.Version, strings.Join(etcdArgs, " "))
	return containerCheck{dataDir: cfg.DataDir, ports: ports}
}

func hasHostPath(pod corev1.Pod, volume string) bool {
	for _, v := range pod.Spec.Volumes {
		if v.Name == volume {
			return v.HostPath != nil
		}
	}
	return false
}

// flagValue is the value of --name in args (--name=v, -name=v, --name v).
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		for _, p := range []string{"--", "-"} {
			if v, ok := strings.CutPrefix(a, p+name+"="); ok {
				return v, true
			}
			if a == p+name && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				return args[i+1], true
			}
		}
	}
	return "", false
}

func mustFlag(t *testing.T, args []string, name string) string {
	t.Helper()
	v, ok := flagValue(args, name)
	if !ok {
		t.Errorf("the exec'd etcd gets no --%s", name)
	}
	return v
}

// flagNames are the names of the flags in args.
func flagNames(args []string) []string {
	var names []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			n, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
			names = append(names, n)
		}
	}
	return names
}

func urlPorts(t *testing.T, urls string) []int {
	t.Helper()
	var ports []int
	for _, u := range strings.Split(urls, ",") {
		i := strings.LastIndex(u, ":")
		p, err := strconv.Atoi(strings.TrimRight(u[i+1:], "/"))
		if i < 0 || err != nil {
			t.Errorf("URL %q has no port", u)
			continue
		}
		ports = append(ports, p)
	}
	return ports
}

// dockerfileEnv is the image's ENV as images/Dockerfile sets it, ARG defaults
// substituted: the environment a container starts with before the manifest's.
func dockerfileEnv(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(), "images", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(raw), "\\\n", " ")
	args := map[string]string{}
	env := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "ARG":
			if k, v, ok := strings.Cut(f[1], "="); ok {
				args[k] = v
			}
		case "ENV":
			for _, kv := range f[1:] {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Fatalf("Dockerfile ENV %q: use KEY=value", kv)
				}
				env[k] = os.Expand(v, func(a string) string { return args[a] })
			}
		}
	}
	for _, k := range []string{"BUNDLED_VERSIONS", "TARGET_VERSION", "DATA_DIRECTORY"} {
		if env[k] == "" {
			t.Fatalf("images/Dockerfile sets no %s", k)
		}
	}
	return env
}

// TestDockerfileMatchesMakefile: the Dockerfile's defaults (used by a plain docker
// build) are the Makefile's default (full) bundle and newest target.
func TestDockerfileMatchesMakefile(t *testing.T) {
	env := dockerfileEnv(t)
	mk, err := os.ReadFile(filepath.Join(repoRoot(), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	// The default VARIANT=full bundles OLD_VERSIONS then SLIM_VERSIONS.
	var versions []string
	for _, name := range []string{"OLD_VERSIONS", "SLIM_VERSIONS"} {
		m := regexp.MustCompile(`(?m)^` + name + ` \?= (.+)$`).FindSubmatch(mk)
		if m == nil {
			t.Fatalf("no %s in the Makefile", name)
		}
		versions = append(versions, strings.Fields(string(m[1]))...)
	}
	if !regexp.MustCompile(`(?m)^VARIANT \?= full$`).Match(mk) {
		t.Fatal("the Makefile's default VARIANT is not full")
	}
	if got, want := env["BUNDLED_VERSIONS"], strings.Join(versions, ","); got != want {
		t.Errorf("Dockerfile BUNDLED_VERSIONS default %q, Makefile %q", got, want)
	}
	if got, want := env["TARGET_VERSION"], versions[len(versions)-1]; got != want {
		t.Errorf("Dockerfile TARGET_VERSION default %q, want the newest bundled %q", got, want)
	}
}

// binDir holds the real etcd binaries (`make etcd-binaries`; ETCD_MIGRATE_BIN_DIR
// overrides), whose --help lists the flags each version knows.
func binDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("ETCD_MIGRATE_BIN_DIR")
	if dir == "" {
		dir = filepath.Join(repoRoot(), "_output", "bin")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

var flagCache = map[string]map[string]bool{}

var helpFlag = regexp.MustCompile(`(?m)^\s+--([a-z0-9-]+)`)

func etcdFlags(t *testing.T, dir, version string) map[string]bool {
	t.Helper()
	if f, ok := flagCache[version]; ok {
		return f
	}
	bin := filepath.Join(dir, "etcd-"+version)
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --help: %v (run `make etcd-binaries`, or set ETCD_MIGRATE_BIN_DIR)", bin, err)
	}
	flags := map[string]bool{}
	for _, m := range helpFlag.FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if len(flags) < 30 { // etcd 2.2.5 has 37, 3.7.3 over 100
		t.Fatalf("%s --help lists only %d flags", bin, len(flags))
	}
	flagCache[version] = flags
	return flags
}
