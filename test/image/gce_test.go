package image

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/pkg/etcdproc"
	"github.com/etcd-migrate/etcd-migrate/pkg/lock"
)

// gceManifest is the copy of Kubernetes' cluster/gce/manifests/etcd.manifest (origin
// in its header).
const gceManifest = "gce-etcd.manifest"

// gcePod is what the test uses of the rendered manifest.
type gcePod struct {
	Spec struct {
		HostNetwork bool `json:"hostNetwork"`
		Containers  []struct {
			Name    string   `json:"name"`
			Image   string   `json:"image"`
			Command []string `json:"command"`
			Env     []struct {
				Name  string `json:"name"`
				Value string `json:"value"`
			} `json:"env"`
			LivenessProbe struct {
				Exec struct {
					Command []string `json:"command"`
				} `json:"exec"`
			} `json:"livenessProbe"`
			VolumeMounts []struct {
				Name      string `json:"name"`
				MountPath string `json:"mountPath"`
			} `json:"volumeMounts"`
		} `json:"containers"`
		Volumes []struct {
			Name     string `json:"name"`
			HostPath struct {
				Path string `json:"path"`
				Type string `json:"type"`
			} `json:"hostPath"`
		} `json:"volumes"`
	} `json:"spec"`
}

var (
	pillarRe      = regexp.MustCompile(`\{\{ *pillar\.get\('([a-z_]+)', '([^']*)'\) *\}\}`)
	placeholderRe = regexp.MustCompile(`\{\{ *([a-z_]+) *\}\}`)
)

// renderGCE renders the manifest the way configure-helper.sh's prepare-etcd-manifest
// does (sed over every {{ name }}, pillar.get with its default unless set), with
// loopback values for one member on plain HTTP: hostname localhost, host IP
// 127.0.0.1, the given client and peer ports, TARGET_VERSION = version.
func renderGCE(t *testing.T, image, version string, port, serverPort int) gcePod {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(etcdtest.RepoRoot(), "testdata", gceManifest))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "#") { // the origin header
			lines = append(lines, l)
		}
	}
	text := strings.Join(lines, "\n")
	repo, tag, _ := strings.Cut(image, ":")
	pillar := map[string]string{"etcd_docker_repository": repo, "etcd_docker_tag": tag, "etcd_version": version}
	text = pillarRe.ReplaceAllStringFunc(text, func(m string) string {
		g := pillarRe.FindStringSubmatch(m)
		if v, ok := pillar[g[1]]; ok {
			return v
		}
		return g[2]
	})
	values := map[string]string{
		"suffix":                       "",
		"hostname":                     "localhost",
		"host_ip":                      "127.0.0.1",
		"etcd_protocol":                "http",
		"etcd_apiserver_protocol":      "http",
		"listen_client_ip":             "127.0.0.1",
		"port":                         strconv.Itoa(port),
		"server_port":                  strconv.Itoa(serverPort),
		"cpulimit":                     `"200m"`,
		"quota_bytes":                  "--quota-backend-bytes=4294967296",
		"cluster_state":                "new",
		"etcd_cluster":                 fmt.Sprintf("etcd-localhost=http://localhost:%d", serverPort),
		"etcd_creds":                   "",
		"etcd_apiserver_creds":         "",
		"etcd_extra_args":              "",
		"etcdctl_certs":                "",
		"liveness_probe_initial_delay": "15",
	}
	var unknown []string
	text = placeholderRe.ReplaceAllStringFunc(text, func(m string) string {
		name := placeholderRe.FindStringSubmatch(m)[1]
		v, ok := values[name]
		if !ok {
			unknown = append(unknown, m)
		}
		return v
	})
	if len(unknown) > 0 || strings.Contains(text, "{{") {
		t.Fatalf("%s: placeholders the test does not render: %q", gceManifest, unknown)
	}
	var pod gcePod
	if err := json.Unmarshal([]byte(text), &pod); err != nil {
		t.Fatalf("rendered %s is not JSON: %v\n%s", gceManifest, err, text)
	}
	if len(pod.Spec.Containers) != 1 || !pod.Spec.HostNetwork {
		t.Fatalf("rendered %s: want one hostNetwork container, got %+v", gceManifest, pod.Spec)
	}
	return pod
}

// gceRun is one start of the rendered pod's container.
type gceRun struct {
	c       *container
	s       *served
	env     map[string]string
	probe   []string
	logFrom int64  // size of the host's etcd.log before this run
	log     string // what this run appended to it, read by readLog
}

// startGCE starts the pod's container as the kubelet would: its command unchanged
// (the image's entrypoint replaced by it), its env, its hostPath volumes (each
// manifest hostPath mapped to the test's stand-in). extraEnv is added.
func startGCE(t *testing.T, tl *tool, name string, pod gcePod, hostPaths map[string]string, extraEnv map[string]string) *gceRun {
	t.Helper()
	ctr := pod.Spec.Containers[0]
	vols := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		h, ok := hostPaths[v.HostPath.Path]
		if !ok {
			t.Fatalf("volume %s: no stand-in for hostPath %s", v.Name, v.HostPath.Path)
		}
		vols[v.Name] = h
	}
	mounts := map[string]string{}
	for _, m := range ctr.VolumeMounts {
		mounts[vols[m.Name]] = m.MountPath
	}
	env := map[string]string{}
	for _, e := range ctr.Env {
		env[e.Name] = e.Value
	}
	for k, v := range extraEnv {
		env[k] = v
	}
	r := &gceRun{env: env, probe: ctr.LivenessProbe.Exec.Command}
	if fi, err := os.Stat(hostPaths["/var/log/etcd.log"]); err == nil {
		r.logFrom = fi.Size()
	}
	r.c = tl.start(t, name, runSpec{mounts: mounts, env: env, entrypoint: ctr.Command})
	return r
}

// readLog reads what this run appended to the host's etcd.log.
func (r *gceRun) readLog(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r.log = string(b[r.logFrom:])
	return r.log
}

// checkProcesses: the container's process is /usr/local/bin/etcd-<version> (the shell
// exec'd /usr/local/bin/etcd, which exec'd it), and no shell or migrate is left.
func (r *gceRun) checkProcesses(t *testing.T, version string) {
	t.Helper()
	pid, exe, _ := r.c.etcdProcess(t)
	if !strings.HasSuffix(exe, "/usr/local/bin/etcd-"+version) {
		t.Errorf("the pod's etcd (pid %d) runs %s, want /usr/local/bin/etcd-%s", pid, exe, version)
	}
	if r.c.tl.name != "buildah" {
		return
	}
	for _, p := range descendants(r.c.cmd.Process.Pid) {
		e, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", p))
		if strings.HasSuffix(e, "/migrate") || strings.HasSuffix(e, "/bin/sh") {
			t.Errorf("%s (pid %d) still runs beside etcd: the manifest's command should have exec'd etcd", e, p)
		}
	}
}

// probe runs the manifest's liveness probe command in the container.
func (r *gceRun) runProbe(t *testing.T, tl *tool) {
	t.Helper()
	code, out := tl.execIn(t, r.c, r.env, r.probe)
	if code != 0 || !strings.Contains(out, "is healthy") {
		t.Errorf("liveness probe %q: exit %d, want 0 and \"is healthy\":\n%s", r.probe, code, out)
	}
}

// testGCEManifest runs Kubernetes' GCE etcd manifest (testdata/gce-etcd.manifest),
// rendered for one loopback member, unchanged in the image: its /bin/sh -c command
// runs migrate-if-needed.sh (output appended to /var/log/etcd.log) and execs
// /usr/local/bin/etcd. On the 3.4.13/etcd3 fixture (keys and leases) with
// TARGET_VERSION = the image's newest it walks 3.4 -> 3.7 and serves the fixture's
// keyspace, revisions and leases included, at 3.7.3; the liveness probe passes; the
// same pod again is a no-op; TARGET_VERSION one minor down rolls back and
// /usr/local/bin/etcd serves it at 3.6.16; and when the migration fails (another
// migrator holds the lock), the manifest's exec of etcd refuses the unmigrated data.
func testGCEManifest(t *testing.T, tl *tool, binDir string) {
	fixture := etcdtest.ExtractFixture(t, fixtureEtcd3)
	base := etcdtest.Serve(t, binDir, "3.4.13", etcdtest.CopyDir(t, fixture))
	want := base.DumpAll(t)
	base.Stop()
	if len(want.Leases) == 0 {
		t.Fatalf("the fixture %s has no leases", fixtureEtcd3)
	}

	host := t.TempDir()
	varEtcd, srv := filepath.Join(host, "mnt-master-pd-var-etcd"), filepath.Join(host, "etc-srv-kubernetes")
	logFile := filepath.Join(host, "var-log-etcd.log")
	for _, d := range []string{varEtcd, srv} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(logFile, nil, 0o644); err != nil { // hostPath type FileOrCreate
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", fixture, filepath.Join(varEtcd, "data")).CombinedOutput(); err != nil {
		t.Fatalf("copy fixture: %v: %s", err, out)
	}
	hostPaths := map[string]string{"/mnt/master-pd/var/etcd": varEtcd, "/var/log/etcd.log": logFile, "/etc/srv/kubernetes": srv}
	port, serverPort, private := etcdtest.FreePort(t), etcdtest.FreePort(t), etcdtest.FreePort(t)
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	// The one addition to the manifest's env: the steps' private client URL on a free
	// port instead of the default 18629, which other tests on this machine may hold.
	extra := map[string]string{"LISTEN_CLIENT_URLS": fmt.Sprintf("http://127.0.0.1:%d", private)}
	older := "3.6.16"

	// 1. TARGET_VERSION = the newest: the walk, through migrate-if-needed.sh.
	pod := renderGCE(t, tl.image, newest, port, serverPort)
	r := startGCE(t, tl, "gce-up", pod, hostPaths, extra)
	r.s = waitServed(t, r.c, clientURL, newest, logFile)
	r.checkProcesses(t, newest)
	got := r.s.dump(t)
	if d := etcdtest.Compare(want, got, 10); len(d) > 0 {
		t.Errorf("the pod's etcd %s serves another keyspace than the 3.4.13 fixture:\n%s", newest, strings.Join(d, "\n"))
	}
	if v := readFile(t, filepath.Join(varEtcd, "data", "version.txt")); v != newest+"/etcd3\n" {
		t.Errorf("version.txt after the walk = %q", v)
	}
	r.runProbe(t, tl)
	log := r.readLog(t, logFile)
	for _, l := range []string{
		"msg=plan", "msg=\"backup written\"", "msg=\"migration done\" version_txt=" + newest + "/etcd3 steps=3",
		// the exec'd etcd's own log, and the ETCD_SNAPSHOT_COUNT it read from the env
		`"etcd-version":"` + newest + `"`, `"snapshot-count":10000`,
	} {
		if !strings.Contains(log, l) {
			t.Errorf("/var/log/etcd.log lacks %q:\n%s", l, log)
		}
	}
	// ETCD_SNAPSHOT_COUNT=10000 in the env did not reach the steps' etcd (it would
	// shadow their --snapshot-count=1, a fatal error in etcd): every step snapshotted.
	if n := stepsWithSnapshot(log); n != 3 {
		t.Errorf("%d of 3 steps logged step done with snapshot_ms, want 3:\n%s", n, log)
	}
	if strings.Contains(r.c.log.String(), "msg=") {
		t.Errorf("migrate logged to the container's output, not to the redirected /var/log/etcd.log:\n%s", r.c.log)
	}
	t.Logf("GCE manifest, 3.4.13/etcd3 -> %s: etcd %s serves %d keys and %d leases (revision %d) after %v; liveness probe passed; unrecognized ETCD_* env warnings of the exec'd etcd: %d",
		newest, newest, len(got.Keys), len(got.Leases), got.Revision, r.s.readyAfter.Round(time.Millisecond), strings.Count(log, "unrecognized environment variable"))
	r.c.stop(t)
	if t.Failed() {
		return
	}

	// 2. The same pod again: a no-op.
	r = startGCE(t, tl, "gce-noop", pod, hostPaths, extra)
	r.s = waitServed(t, r.c, clientURL, newest, logFile)
	r.checkProcesses(t, newest)
	if d := etcdtest.Compare(got, r.s.dump(t), 10); len(d) > 0 {
		t.Errorf("the second run serves another keyspace:\n%s", strings.Join(d, "\n"))
	}
	log = r.readLog(t, logFile)
	if !strings.Contains(log, "steps=0") || strings.Contains(log, "backup written") || strings.Contains(log, "step done") {
		t.Errorf("the second run of the same pod was not a no-op:\n%s", log)
	}
	r.runProbe(t, tl)
	t.Logf("GCE manifest, same pod again: no-op, etcd %s answered after %v", newest, r.s.readyAfter.Round(time.Millisecond))
	r.c.stop(t)
	if t.Failed() {
		return
	}

	// 3. TARGET_VERSION one minor down: the rollback through the manifest, and
	// /usr/local/bin/etcd is then etcd-3.6.16.
	pod = renderGCE(t, tl.image, older, port, serverPort)
	r = startGCE(t, tl, "gce-down", pod, hostPaths, extra)
	r.s = waitServed(t, r.c, clientURL, older, logFile)
	r.checkProcesses(t, older)
	if d := etcdtest.Compare(got, r.s.dump(t), 10); len(d) > 0 {
		t.Errorf("after the rollback to %s the keyspace differs:\n%s", older, strings.Join(d, "\n"))
	}
	if v, err := etcdproc.GetVersions(context.Background(), clientURL); err != nil || v.Cluster != "3.6.0" || v.Storage != "3.6.0" {
		t.Errorf("after the rollback: versions %+v, %v; want cluster and storage 3.6.0", v, err)
	}
	if v := readFile(t, filepath.Join(varEtcd, "data", "version.txt")); v != older+"/etcd3\n" {
		t.Errorf("version.txt after the rollback = %q", v)
	}
	log = r.readLog(t, logFile)
	for _, l := range []string{"kind=rollback-minor", "msg=\"migration done\" version_txt=" + older + "/etcd3 steps=1", `"etcd-version":"` + older + `"`} {
		if !strings.Contains(log, l) {
			t.Errorf("/var/log/etcd.log of the rollback lacks %q:\n%s", l, log)
		}
	}
	r.runProbe(t, tl)
	t.Logf("GCE manifest, TARGET_VERSION=%s: rolled back, /usr/local/bin/etcd is etcd %s serving the same keyspace after %v; liveness probe passed",
		older, older, r.s.readyAfter.Round(time.Millisecond))
	r.c.stop(t)
	if t.Failed() {
		return
	}

	// 4. The manifest execs etcd even when migrate-if-needed.sh failed: with another
	// migrator holding the lock, migrate refuses, and /usr/local/bin/etcd (migrate
	// run as etcd) refuses too instead of starting etcd 3.7.3 on the 3.6.16 data.
	// The container exits 2 (the kubelet would restart it and retry); the data dir
	// is untouched.
	dataDir := filepath.Join(varEtcd, "data")
	sum := etcdtest.Checksum(t, dataDir)
	lk, err := lock.Acquire(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lk.Release() }()
	pod = renderGCE(t, tl.image, newest, port, serverPort)
	r = startGCE(t, tl, "gce-locked", pod, hostPaths, extra)
	code, out := r.c.wait(t, time.Minute)
	log = r.readLog(t, logFile)
	refusal := "another migrate holds the lock"
	if code != 2 || strings.Count(out+log, "migrate: error:") != 2 || !strings.Contains(out+log, refusal) {
		t.Errorf("GCE pod with the lock held: exit %d, want 2, migrate's error line and %q; container output:\n%s\netcd.log:\n%s", code, refusal, out, log)
	}
	if strings.Contains(log, `"etcd-version"`) {
		t.Errorf("an etcd started although the migration failed:\n%s", log)
	}
	if etcdtest.Checksum(t, dataDir) != sum {
		t.Errorf("the data dir changed although migrate refused")
	}
	t.Logf("GCE manifest with the lock held: migrate-if-needed.sh and /usr/local/bin/etcd refused to touch the %s data (exit %d), no etcd %s started, data dir unchanged", older, code, newest)
}

// stepsWithSnapshot counts the "step done" log lines that carry snapshot_ms.
func stepsWithSnapshot(log string) int {
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, `msg="step done"`) && strings.Contains(l, "snapshot_ms=") {
			n++
		}
	}
	return n
}
