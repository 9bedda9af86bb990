package image

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/internal/fixture"
	"github.com/etcd-migrate/etcd-migrate/pkg/etcdproc"
)

// kubeadm's etcd static pod manifests, one per era (origin in their headers).
const (
	kubeadm35 = "kubeadm-etcd-3.5.yaml"
	kubeadm36 = "kubeadm-etcd-3.6.yaml"
	// kubeadmNode is the advertise address the manifests were written for; the
	// renderer makes it 127.0.0.1.
	kubeadmNode = "192.0.2.10"
	// The mounts kubeadm gives the container: only the data dir and the etcd PKI.
	kubeadmDataDir = "/var/lib/etcd"
	kubeadmPKI     = "/etc/kubernetes/pki/etcd"
)

// kubeadmPod is what the test uses of a kubeadm manifest.
type kubeadmPod struct {
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
			LivenessProbe  *httpProbe `json:"livenessProbe"`
			ReadinessProbe *httpProbe `json:"readinessProbe"`
			StartupProbe   *httpProbe `json:"startupProbe"`
			VolumeMounts   []struct {
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

type httpProbe struct {
	HTTPGet struct {
		Host   string `json:"host"`
		Path   string `json:"path"`
		Port   int    `json:"port"`
		Scheme string `json:"scheme"`
	} `json:"httpGet"`
}

// kubeadmPorts are a rendered member's ports: kubeadm's 2379, 2380 and 2381.
type kubeadmPorts struct{ client, peer, metrics int }

// renderKubeadm reads the manifest and fills it for one loopback member: the node's
// advertise address becomes 127.0.0.1, kubeadm's default client, peer and metrics
// ports free ones, the image the test's. Nothing else changes.
func renderKubeadm(t *testing.T, name, image string, p kubeadmPorts) kubeadmPod {
	t.Helper()
	return renderKubeadmAt(t, name, image, "127.0.0.1", p)
}

// renderKubeadmAt is renderKubeadm with the node's advertise address become ip.
func renderKubeadmAt(t *testing.T, name, image, ip string, p kubeadmPorts) kubeadmPod {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(etcdtest.RepoRoot(), "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), kubeadmNode, ip)
	portRe := regexp.MustCompile(`(:|port: )(2379|2380|2381)\b`)
	text = portRe.ReplaceAllStringFunc(text, func(m string) string {
		g := portRe.FindStringSubmatch(m)
		port := map[string]int{"2379": p.client, "2380": p.peer, "2381": p.metrics}[g[2]]
		return g[1] + strconv.Itoa(port)
	})
	text = regexp.MustCompile(`(?m)^(\s+image: ).*$`).ReplaceAllString(text, "${1}"+image)
	doc, err := parseYAML(text)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	j, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var pod kubeadmPod
	if err := json.Unmarshal(j, &pod); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, j)
	}
	if len(pod.Spec.Containers) != 1 || !pod.Spec.HostNetwork || len(pod.Spec.Containers[0].Command) < 10 {
		t.Fatalf("%s: want one hostNetwork container with kubeadm's etcd command, got %+v", name, pod.Spec)
	}
	return pod
}

// kubeadmPKIFiles generates into dir what `kubeadm init phase certs etcd-*` writes
// into /etc/kubernetes/pki/etcd (ECDSA P-256 keys here, RSA in kubeadm): the etcd CA,
// the server and peer certificates of node cp-0 (server and client auth; SANs cp-0,
// localhost, 127.0.0.1, ::1), and the healthcheck client certificate. It returns a
// client TLS config with that client certificate, as the test's checks use it.
func kubeadmPKIFiles(t *testing.T, dir string) *tls.Config {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "etcd-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	write("ca.crt", "CERTIFICATE", caDER)
	kder, _ := x509.MarshalECPrivateKey(caKey)
	write("ca.key", "EC PRIVATE KEY", kder)
	var clientCert tls.Certificate
	for i, c := range []struct {
		file string
		cn   string
		ext  []x509.ExtKeyUsage
		sans bool
	}{
		{"server", "cp-0", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, true},
		{"peer", "cp-0", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, true},
		{"healthcheck-client", "kube-etcd-healthcheck-client", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, false},
	} {
		key := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: c.cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: c.ext,
		}
		if c.sans {
			tmpl.DNSNames = []string{"cp-0", "localhost"}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		write(c.file+".crt", "CERTIFICATE", der)
		write(c.file+".key", "EC PRIVATE KEY", kder)
		if c.file == "healthcheck-client" {
			clientCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{clientCert}, MinVersion: tls.VersionTLS12}
}

// kubeadmRun is one start of the rendered pod's container.
type kubeadmRun struct {
	c         *container
	pod       kubeadmPod
	clientURL string
	ports     kubeadmPorts
	tls       *tls.Config
	// versionAfter: from the start of `<tool> run` until GET /version over TLS names
	// the target; readyAfter: until a linearizable read over TLS answers.
	versionAfter, readyAfter time.Duration
	versions                 etcdproc.ServerVersions
	client                   *clientv3.Client
}

// kubeadmHost is a node's stand-ins for kubeadm's hostPaths.
type kubeadmHost struct {
	dataDir, pki string
	tls          *tls.Config
}

// newKubeadmHost makes the node's data dir (a copy of src without version.txt,
// as kubeadm leaves it) and PKI dir. The host's data dir is named var-lib-etcd: the
// backup inside it is named after the container's path, /var/lib/etcd.
func newKubeadmHost(t *testing.T, src string) *kubeadmHost {
	t.Helper()
	host := t.TempDir()
	h := &kubeadmHost{dataDir: filepath.Join(host, "var-lib-etcd"), pki: filepath.Join(host, "etc-kubernetes-pki-etcd")}
	if out, err := exec.Command("cp", "-a", src, h.dataDir).CombinedOutput(); err != nil {
		t.Fatalf("copy data: %v: %s", err, out)
	}
	if err := os.Remove(filepath.Join(h.dataDir, "version.txt")); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if err := os.MkdirAll(h.pki, 0o755); err != nil {
		t.Fatal(err)
	}
	h.tls = kubeadmPKIFiles(t, h.pki)
	return h
}

// startKubeadm starts the pod's container as the kubelet would: its command (the
// image's entrypoint replaced by it) and env unchanged, each hostPath volume the
// host's stand-in. extraEnv is added to the env.
func startKubeadm(t *testing.T, tl *tool, name, manifest string, h *kubeadmHost, extraEnv map[string]string) *kubeadmRun {
	t.Helper()
	p := kubeadmPorts{etcdtest.FreePort(t), etcdtest.FreePort(t), etcdtest.FreePort(t)}
	pod := renderKubeadm(t, manifest, tl.image, p)
	ctr := pod.Spec.Containers[0]
	stand := map[string]string{kubeadmDataDir: h.dataDir, kubeadmPKI: h.pki}
	vols := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		hp, ok := stand[v.HostPath.Path]
		if !ok {
			t.Fatalf("%s: volume %s: no stand-in for hostPath %s", manifest, v.Name, v.HostPath.Path)
		}
		vols[v.Name] = hp
	}
	mounts := map[string]string{}
	for _, m := range ctr.VolumeMounts {
		mounts[vols[m.Name]] = m.MountPath
	}
	if len(mounts) != 2 || mounts[h.dataDir] != kubeadmDataDir || mounts[h.pki] != kubeadmPKI {
		t.Fatalf("%s mounts %v, want only the data dir at %s and the PKI at %s", manifest, mounts, kubeadmDataDir, kubeadmPKI)
	}
	env := map[string]string{}
	for _, e := range ctr.Env {
		env[e.Name] = e.Value
	}
	for k, v := range extraEnv {
		env[k] = v
	}
	r := &kubeadmRun{pod: pod, ports: p, tls: h.tls, clientURL: fmt.Sprintf("https://127.0.0.1:%d", p.client)}
	r.c = tl.start(t, name, runSpec{mounts: mounts, env: env, entrypoint: ctr.Command})
	return r
}

// privateStepURL is the one addition to the manifest's env in these tests: the
// steps' private client URL on a free port instead of the default 18629, which other
// tests on this machine may hold.
func privateStepURL(t *testing.T) map[string]string {
	return map[string]string{"LISTEN_CLIENT_URLS": fmt.Sprintf("http://127.0.0.1:%d", etcdtest.FreePort(t))}
}

func (r *kubeadmRun) httpClient() *http.Client {
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: r.tls.Clone()}}
}

// waitServing waits until the container's etcd answers GET /version over TLS (with
// the client certificate) as etcd-<version>, then a linearizable read through a TLS
// client.
func (r *kubeadmRun) waitServing(t *testing.T, version string) {
	t.Helper()
	hc := r.httpClient()
	deadline := r.c.started.Add(3 * time.Minute)
	for {
		v, err := getVersionsWith(hc, r.clientURL)
		if err == nil && v.Server == version {
			r.versionAfter, r.versions = time.Since(r.c.started), v
			break
		}
		if r.c.exited() {
			code, _ := r.c.wait(t, 0)
			t.Fatalf("container %s exited (%d) instead of serving etcd %s:\n%s", r.c.name, code, version, r.c.log)
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s: no etcd %s on %s (last %+v, %v):\n%s", r.c.name, version, r.clientURL, v, err, r.c.log)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cl, err := clientv3.New(clientv3.Config{Endpoints: []string{r.clientURL}, TLS: r.tls.Clone(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	r.client = cl
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cl.Get(ctx, "image-test-ready")
		cancel()
		if err == nil {
			r.readyAfter = time.Since(r.c.started)
			return
		}
		if r.c.exited() || time.Now().After(deadline) {
			t.Fatalf("container %s: etcd %s does not answer reads over TLS: %v\n%s", r.c.name, version, err, r.c.log)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func getVersionsWith(hc *http.Client, url string) (etcdproc.ServerVersions, error) {
	var v etcdproc.ServerVersions
	resp, err := hc.Get(url + "/version")
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return v, fmt.Errorf("GET /version: %s: %s", resp.Status, b)
	}
	return v, json.Unmarshal(b, &v)
}

// checkProbes runs every probe of the manifest (liveness, readiness, startup) as
// the kubelet does: GET on its scheme, host, port and path; each must answer 200
// (and /health {"health":"true"}). It returns the paths probed.
func (r *kubeadmRun) checkProbes(t *testing.T) []string {
	t.Helper()
	ctr := r.pod.Spec.Containers[0]
	var paths []string
	for kind, p := range map[string]*httpProbe{"liveness": ctr.LivenessProbe, "readiness": ctr.ReadinessProbe, "startup": ctr.StartupProbe} {
		if p == nil {
			continue
		}
		g := p.HTTPGet
		if g.Port != r.ports.metrics || g.Host != "127.0.0.1" {
			t.Errorf("%s probe on %s:%d, want the rendered metrics port 127.0.0.1:%d", kind, g.Host, g.Port, r.ports.metrics)
		}
		url := fmt.Sprintf("%s://%s:%d%s", strings.ToLower(g.Scheme), g.Host, g.Port, g.Path)
		var code int
		var body string
		// The kubelet retries; the checks here come after a linearizable read, so
		// a few tries cover only the metrics listener's own start.
		for try := 0; try < 20; try++ {
			resp, err := http.Get(url)
			if err == nil {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
				resp.Body.Close()
				code, body = resp.StatusCode, string(b)
				if code == http.StatusOK {
					break
				}
			} else {
				body = err.Error()
			}
			time.Sleep(100 * time.Millisecond)
		}
		if code != http.StatusOK || (strings.HasPrefix(g.Path, "/health") && !strings.Contains(body, `"health":"true"`)) {
			t.Errorf("%s probe %s: %d %q, want 200 and healthy", kind, url, code, body)
		}
		paths = append(paths, kind+" "+g.Path)
	}
	if len(paths) == 0 {
		t.Errorf("the manifest has no probes")
	}
	return paths
}

// upgradeSteps lists the "from -> to" minors of the log's upgrade-minor steps.
func upgradeSteps(log string) []string {
	re := regexp.MustCompile(`kind=upgrade-minor from=(\d+\.\d+)\.\d+/etcd3 version_txt=(\d+\.\d+)\.\d+/etcd3`)
	var out []string
	for _, m := range re.FindAllStringSubmatch(log, -1) {
		out = append(out, m[1]+"->"+m[2])
	}
	return out
}

// kubeadmData is one data set the tests start from: a dir without version.txt
// and the keyspace its own etcd served.
type kubeadmData struct {
	name, dir string
	want      etcdtest.Dump
	// minors the walk to 3.6 goes through
	upTo36 []string
}

func kubeadmDataSets(t *testing.T, binDir string) []kubeadmData {
	t.Helper()
	f34 := etcdtest.ExtractFixture(t, fixtureEtcd3)
	s := etcdtest.Serve(t, binDir, "3.4.13", etcdtest.CopyDir(t, f34))
	want34 := s.DumpAll(t)
	s.Stop()

	// Data written by etcd 3.5.35 itself (internal/fixture, as the benchmarks'
	// data sets): puts, overwrites, deletes, leased keys.
	d35 := filepath.Join(t.TempDir(), "etcd-3.5.35")
	start := time.Now()
	if err := fixture.Generate(binDir, "3.5.35", 300, 200, d35, etcdtest.FreePortPair(t)); err != nil {
		t.Fatalf("generate 3.5.35 data: %v", err)
	}
	if err := os.Remove(filepath.Join(d35, "version.txt")); err != nil {
		t.Fatal(err)
	}
	s = etcdtest.Serve(t, binDir, "3.5.35", etcdtest.CopyDir(t, d35))
	want35 := s.DumpAll(t)
	s.Stop()
	t.Logf("data written by etcd 3.5.35 generated in %v: %d keys, %d leases, revision %d",
		time.Since(start).Round(time.Millisecond), len(want35.Keys), len(want35.Leases), want35.Revision)
	return []kubeadmData{
		{name: "written-by-3.4.13", dir: f34, want: want34, upTo36: []string{"3.4->3.5", "3.5->3.6"}},
		{name: "written-by-3.5.35", dir: d35, want: want35, upTo36: []string{"3.5->3.6"}},
	}
}

// testKubeadm: kubeadm's etcd static pod, as kubeadm writes it, run unchanged in the
// image (only the image changed, plus TARGET_VERSION where a test sets it and the
// steps' private URL).
func testKubeadm(t *testing.T, tl *tool, binDir string) {
	sets := kubeadmDataSets(t, binDir)
	for _, d := range sets {
		t.Run("Era35To3616/"+d.name, func(t *testing.T) { testKubeadm35To36(t, tl, d) })
	}
	for _, d := range sets {
		t.Run("Era36Default/"+d.name, func(t *testing.T) { testKubeadm36Default(t, tl, d) })
	}
	t.Run("Era35FlagsOn373Refused", func(t *testing.T) { testKubeadm35On373(t, tl, sets[1]) })
	t.Run("DockerRun", func(t *testing.T) { testDockerRun(t, tl, binDir, sets[1]) })
	t.Run("HARolling", func(t *testing.T) { testKubeadmHARolling(t, tl) })
}

// testKubeadm35To36: the 3.5-era manifest, TARGET_VERSION=3.6.16 added to its env,
// on data without version.txt: migrate (the image's etcd) walks every minor up to
// 3.6, then etcd 3.6.16 serves every key with its revisions and leases over TLS with
// client-cert auth (cluster and storage version 3.6.0), and the manifest's probe URLs
// answer healthy (the 3.5-era flags are accepted by 3.6.16). The backup is inside
// the mounted data dir. The container removed and the pod run again: a no-op
// (steps=0, no backup written) serving the same keyspace, the backup still there.
func testKubeadm35To36(t *testing.T, tl *tool, d kubeadmData) {
	h := newKubeadmHost(t, d.dir)
	env := privateStepURL(t)
	env["TARGET_VERSION"] = "3.6.16"
	r := startKubeadm(t, tl, "kubeadm35-up", kubeadm35, h, env)
	r.waitServing(t, "3.6.16")
	log := r.c.log.String()
	if r.versions.Cluster != "3.6.0" || r.versions.Storage != "3.6.0" {
		t.Errorf("after the walk: versions %+v, want cluster and storage 3.6.0", r.versions)
	}
	if got := upgradeSteps(log); strings.Join(got, " ") != strings.Join(d.upTo36, " ") {
		t.Errorf("the walk's upgrade steps %q, want every minor %q:\n%s", got, d.upTo36, log)
	}
	for _, l := range []string{
		`msg="backup written" path=` + kubeadmDataDir + "/.etcd-migrate-backup/etcd.bak",
		`msg="migration done" version_txt=3.6.16/etcd3`,
		"msg=exec binary=/usr/local/bin/etcd-3.6.16",
	} {
		if !strings.Contains(log, l) {
			t.Errorf("container log lacks %q:\n%s", l, log)
		}
	}
	got := etcdtest.DumpClient(t, r.client)
	if diffs := etcdtest.Compare(d.want, got, 10); len(diffs) > 0 {
		t.Errorf("etcd 3.6.16 serves another keyspace than the data's own etcd:\n%s", strings.Join(diffs, "\n"))
	}
	probes := r.checkProbes(t)
	r.checkTLSRequired(t)
	if v := readFile(t, filepath.Join(h.dataDir, "version.txt")); v != "3.6.16/etcd3\n" {
		t.Errorf("version.txt after the walk = %q", v)
	}
	backup := filepath.Join(h.dataDir, ".etcd-migrate-backup", "etcd.bak")
	if fi, err := os.Stat(filepath.Join(backup, "member")); err != nil || !fi.IsDir() {
		t.Errorf("no backup with a member dir inside the mounted data dir (%s): %v", backup, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(h.dataDir)); len(entries) != 2 { // var-lib-etcd and the PKI
		t.Errorf("the container wrote beside the mounted data dir on the host: %d entries", len(entries))
	}
	// etcd 3.6.16 accepts the 3.5-era flags; the log says they are deprecated
	// (migrate's warning before the exec, etcd's own after it).
	var deprecated []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "experimental-") && strings.Contains(strings.ToLower(l), "deprecat") {
			deprecated = append(deprecated, l)
		}
	}
	if len(deprecated) == 0 {
		t.Errorf("no deprecation warning for the 3.5-era flags in the log:\n%s", log)
	}
	t.Logf("kubeadm 3.5-era manifest, data %s, TARGET_VERSION=3.6.16: walked %q, etcd 3.6.16 serves %d keys and %d leases over TLS (client cert); container start to /version %v, to a read %v; probes %q healthy; %d deprecation warnings for the 3.5-era flags in the log: %.300s",
		d.name, d.upTo36, len(got.Keys), len(got.Leases), r.versionAfter.Round(time.Millisecond), r.readyAfter.Round(time.Millisecond), probes, len(deprecated), strings.Join(deprecated, " | "))
	r.c.stop(t)
	if t.Failed() {
		return
	}
	backupSum := etcdtest.Checksum(t, backup)

	// The container removed (stop removes it), the same pod again: a no-op.
	n := startKubeadm(t, tl, "kubeadm35-noop", kubeadm35, h, env)
	n.waitServing(t, "3.6.16")
	nlog := n.c.log.String()
	if !strings.Contains(nlog, "steps=0") || strings.Contains(nlog, "backup written") || strings.Contains(nlog, "step done") {
		t.Errorf("the same pod again was not a no-op:\n%s", nlog)
	}
	if diffs := etcdtest.Compare(got, etcdtest.DumpClient(t, n.client), 10); len(diffs) > 0 {
		t.Errorf("the no-op run serves another keyspace:\n%s", strings.Join(diffs, "\n"))
	}
	n.checkProbes(t)
	n.c.stop(t)
	if etcdtest.Checksum(t, backup) != backupSum {
		t.Errorf("the backup inside the data dir changed across the no-op run")
	}
	t.Logf("same pod again (container removed and recreated): no-op (steps=0), etcd 3.6.16 at /version after %v, a read after %v; backup %s still there",
		n.versionAfter.Round(time.Millisecond), n.readyAfter.Round(time.Millisecond), strings.TrimPrefix(backup, filepath.Dir(h.dataDir)+"/"))
}

// checkTLSRequired: the served etcd refuses a client without a certificate
// (--client-cert-auth=true is in effect).
func (r *kubeadmRun) checkTLSRequired(t *testing.T) {
	t.Helper()
	cfg := r.tls.Clone()
	cfg.Certificates = nil
	cl, err := clientv3.New(clientv3.Config{Endpoints: []string{r.clientURL}, TLS: cfg, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return // refused at dial: as wanted
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := cl.Get(ctx, "x"); err == nil {
		t.Errorf("etcd answered a client without a certificate: --client-cert-auth=true not in effect")
	}
}

// testKubeadm36Default: the 3.6-era manifest unchanged (no TARGET_VERSION: the
// image's default, 3.7.3) on the same data: the walk up to 3.7, etcd 3.7.3 serves
// every key over TLS, /livez and /readyz answer.
func testKubeadm36Default(t *testing.T, tl *tool, d kubeadmData) {
	h := newKubeadmHost(t, d.dir)
	r := startKubeadm(t, tl, "kubeadm36-up", kubeadm36, h, privateStepURL(t))
	r.waitServing(t, newest)
	log := r.c.log.String()
	want := append(append([]string(nil), d.upTo36...), "3.6->3.7")
	if got := upgradeSteps(log); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("the walk's upgrade steps %q, want every minor %q:\n%s", got, want, log)
	}
	if !strings.HasPrefix(r.versions.Cluster, "3.7.") {
		t.Errorf("after the walk: versions %+v, want cluster version 3.7", r.versions)
	}
	if !strings.Contains(log, `msg="backup written" path=`+kubeadmDataDir+"/.etcd-migrate-backup/etcd.bak") {
		t.Errorf("no backup inside the mounted data dir:\n%s", log)
	}
	got := etcdtest.DumpClient(t, r.client)
	if diffs := etcdtest.Compare(d.want, got, 10); len(diffs) > 0 {
		t.Errorf("etcd %s serves another keyspace than the data's own etcd:\n%s", newest, strings.Join(diffs, "\n"))
	}
	probes := r.checkProbes(t)
	t.Logf("kubeadm 3.6-era manifest, data %s, image default target: walked %q, etcd %s (versions %+v) serves %d keys over TLS; container start to /version %v, to a read %v; probes %q healthy",
		d.name, want, newest, r.versions, len(got.Keys), r.versionAfter.Round(time.Millisecond), r.readyAfter.Round(time.Millisecond), probes)
	r.c.stop(t)
}

// testKubeadm35On373: the 3.5-era manifest with the image's default target, 3.7.3,
// which removed --experimental-initial-corrupt-check: the container exits 2 within a
// second of migrate's start, naming --feature-gates=InitialCorruptCheck=true, no etcd
// started and the data dir byte for byte as it was.
func testKubeadm35On373(t *testing.T, tl *tool, d kubeadmData) {
	h := newKubeadmHost(t, d.dir)
	sum := etcdtest.Checksum(t, h.dataDir)
	// What the tool costs to run a container that serves no data: the baseline the
	// refusal's time is measured against.
	idle := tl.start(t, "kubeadm-idle", runSpec{entrypoint: []string{"/usr/local/bin/etcd-" + newest, "--version"}})
	if code, out := idle.wait(t, time.Minute); code != 0 {
		t.Fatalf("etcd --version in the image: exit %d:\n%s", code, out)
	}
	overhead := time.Since(idle.started)

	r := startKubeadm(t, tl, "kubeadm35-on-373", kubeadm35, h, privateStepURL(t))
	code, out := r.c.wait(t, time.Minute)
	took := time.Since(r.c.started)
	want := "--feature-gates=InitialCorruptCheck=true"
	if code != 2 || !strings.Contains(out, want) || !strings.Contains(out, "migrate: error:") {
		t.Errorf("3.5-era manifest on %s: exit %d, want 2 and migrate's error naming %s:\n%s", newest, code, want, out)
	}
	if strings.Contains(out, `"etcd-version"`) || strings.Contains(out, "msg=exec") {
		t.Errorf("an etcd started although the flags were refused:\n%s", out)
	}
	if took-overhead > time.Second {
		t.Errorf("the refusal took %v, %v more than a container that only runs etcd --version (%v): want under a second", took, took-overhead, overhead)
	}
	if etcdtest.Checksum(t, h.dataDir) != sum {
		t.Errorf("the refused run changed the data dir")
	}
	t.Logf("3.5-era manifest on %s: exit %d after %v (%s run of etcd --version alone: %v): %s",
		newest, code, took.Round(time.Millisecond), tl.name, overhead.Round(time.Millisecond), firstLine(out, "migrate: error:"))
}

func firstLine(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, prefix) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// parseYAML parses the block-style YAML subset that sigs.k8s.io/yaml writes for a
// Pod (block mappings and sequences, plain or quoted scalars, {} and [] and null),
// into what encoding/json would decode: the test module has no YAML library.
func parseYAML(src string) (any, error) {
	var lines []yamlLine
	for n, l := range strings.Split(src, "\n") {
		trimmed := strings.TrimLeft(l, " ")
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if strings.HasPrefix(trimmed, "\t") {
			return nil, fmt.Errorf("line %d: tab indentation", n+1)
		}
		lines = append(lines, yamlLine{indent: len(l) - len(trimmed), text: strings.TrimRight(trimmed, " "), n: n + 1})
	}
	p := &yamlParser{lines: lines}
	if len(lines) == 0 {
		return nil, nil
	}
	v, err := p.block(lines[0].indent)
	if err == nil && p.i < len(p.lines) {
		err = fmt.Errorf("line %d: unexpected indentation", p.lines[p.i].n)
	}
	return v, err
}

type yamlLine struct {
	indent int
	text   string
	n      int
}

type yamlParser struct {
	lines []yamlLine
	i     int
}

func (p *yamlParser) block(indent int) (any, error) {
	l := p.lines[p.i]
	if l.text == "-" || strings.HasPrefix(l.text, "- ") {
		return p.seq(indent)
	}
	return p.mapping(indent)
}

func (p *yamlParser) seq(indent int) (any, error) {
	out := []any{}
	for p.i < len(p.lines) && p.lines[p.i].indent == indent && (p.lines[p.i].text == "-" || strings.HasPrefix(p.lines[p.i].text, "- ")) {
		rest := strings.TrimLeft(strings.TrimPrefix(p.lines[p.i].text, "-"), " ")
		if rest == "" {
			p.i++
			if p.i >= len(p.lines) || p.lines[p.i].indent <= indent {
				out = append(out, nil)
				continue
			}
			v, err := p.block(p.lines[p.i].indent)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			continue
		}
		if _, _, isMap := yamlKey(rest); isMap {
			// "- key: value": a mapping whose first line starts after "- ".
			inner := indent + len(p.lines[p.i].text) - len(rest)
			p.lines[p.i] = yamlLine{indent: inner, text: rest, n: p.lines[p.i].n}
			v, err := p.mapping(inner)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			continue
		}
		out = append(out, yamlScalar(rest))
		p.i++
	}
	return out, nil
}

func (p *yamlParser) mapping(indent int) (any, error) {
	out := map[string]any{}
	for p.i < len(p.lines) && p.lines[p.i].indent == indent {
		l := p.lines[p.i]
		k, v, ok := yamlKey(l.text)
		if !ok {
			return nil, fmt.Errorf("line %d: want key: value, got %q", l.n, l.text)
		}
		p.i++
		if v != "" {
			out[k] = yamlScalar(v)
			continue
		}
		switch {
		case p.i < len(p.lines) && p.lines[p.i].indent > indent:
			val, err := p.block(p.lines[p.i].indent)
			if err != nil {
				return nil, err
			}
			out[k] = val
		case p.i < len(p.lines) && p.lines[p.i].indent == indent && strings.HasPrefix(p.lines[p.i].text, "- "):
			// A sequence under a key at the key's own indentation.
			val, err := p.seq(indent)
			if err != nil {
				return nil, err
			}
			out[k] = val
		default:
			out[k] = nil
		}
	}
	return out, nil
}

// yamlKey splits "key: value" or "key:".
func yamlKey(s string) (key, value string, ok bool) {
	if strings.HasPrefix(s, `"`) || strings.HasPrefix(s, `'`) {
		return "", "", false
	}
	if k, ok := strings.CutSuffix(s, ":"); ok && !strings.Contains(k, ": ") {
		return k, "", true
	}
	k, v, ok := strings.Cut(s, ": ")
	if !ok || strings.Contains(k, " ") {
		return "", "", false
	}
	return k, strings.TrimSpace(v), true
}

func yamlScalar(s string) any {
	switch {
	case s == "null" || s == "~":
		return nil
	case s == "{}":
		return map[string]any{}
	case s == "[]":
		return []any{}
	case s == "true" || s == "false":
		return s == "true"
	case len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"':
		if u, err := strconv.Unquote(s); err == nil {
			return u
		}
	case len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'':
		return strings.ReplaceAll(s[1:len(s)-1], "''", "'")
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n
	}
	return s
}

// TestKubeadmManifests checks the testdata manifests and their rendering without an
// image: each era's command carries its flags, the mounts are only the data dir and
// the PKI, there is no env, and every probe is on the rendered metrics port.
func TestKubeadmManifests(t *testing.T) {
	common := []string{"etcd", "--data-dir=/var/lib/etcd", "--client-cert-auth=true", "--peer-client-cert-auth=true",
		"--snapshot-count=10000", "--listen-metrics-urls=http://127.0.0.1:3", "--cert-file=/etc/kubernetes/pki/etcd/server.crt",
		"--listen-client-urls=https://127.0.0.1:1,https://127.0.0.1:1", "--initial-cluster=cp-0=https://127.0.0.1:2"}
	for _, tc := range []struct {
		file   string
		flags  []string
		probes []string
	}{
		{kubeadm35, []string{"--experimental-initial-corrupt-check=true", "--experimental-watch-progress-notify-interval=5s"},
			[]string{"/health?exclude=NOSPACE&serializable=true", "", "/health?serializable=false"}},
		{kubeadm36, []string{"--feature-gates=InitialCorruptCheck=true", "--watch-progress-notify-interval=5s"},
			[]string{"/livez", "/readyz", "/readyz"}},
	} {
		pod := renderKubeadm(t, tc.file, "localhost/x:y", kubeadmPorts{1, 2, 3})
		c := pod.Spec.Containers[0]
		for _, f := range append(append([]string(nil), common...), tc.flags...) {
			if !slices.Contains(c.Command, f) {
				t.Errorf("%s: command lacks %q: %q", tc.file, f, c.Command)
			}
		}
		if c.Image != "localhost/x:y" || len(c.Env) != 0 || len(c.VolumeMounts) != 2 || len(pod.Spec.Volumes) != 2 {
			t.Errorf("%s: image %q env %v mounts %v volumes %v", tc.file, c.Image, c.Env, c.VolumeMounts, pod.Spec.Volumes)
		}
		for i, p := range []*httpProbe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
			switch {
			case tc.probes[i] == "" && p != nil:
				t.Errorf("%s: probe %d: %+v, want none", tc.file, i, p)
			case tc.probes[i] != "" && (p == nil || p.HTTPGet.Path != tc.probes[i] || p.HTTPGet.Port != 3 || p.HTTPGet.Host != "127.0.0.1"):
				t.Errorf("%s: probe %d: %+v, want %s on 127.0.0.1:3", tc.file, i, p, tc.probes[i])
			}
		}
	}
}

// dockerCLI runs the image through a docker-compatible CLI (docker with an engine,
// else podman on the test's buildah storage), so that `docker run IMAGE ARGS…`
// goes through the image's ENTRYPOINT and CMD as on a real engine, not through
// `buildah run` with the entrypoint spelled out.
type dockerCLI struct {
	name string   // "docker" or "podman"
	base []string // global flags (podman: the buildah storage)
	run  []string // flags of every run
}

func (d *dockerCLI) cmd(args ...string) *exec.Cmd {
	return exec.Command(d.name, append(append([]string(nil), d.base...), args...)...)
}

// runArgs is `run --rm --name name` with the CLI's run flags, then opts, the image
// and args.
func (d *dockerCLI) runArgs(name, image string, opts, args []string) []string {
	a := append([]string{"run", "--rm", "--name", name}, d.run...)
	return append(append(append(a, opts...), image), args...)
}

// newDockerCLI finds a CLI that runs the image here: docker when the test builds
// with it (an engine answers), else podman on the buildah storage with host
// networking and, as this machine needs, the first of a few runtime settings that
// runs `etcd --version`: none, --cgroups=disabled (crun without cgroups), runc.
// The error says why none works.
func newDockerCLI(t *testing.T, tl *tool) (*dockerCLI, error) {
	t.Helper()
	if tl.name == "docker" {
		return &dockerCLI{name: "docker", run: []string{"--network", "host"}}, nil
	}
	if _, err := exec.LookPath("podman"); err != nil {
		return nil, fmt.Errorf("no docker engine and no podman (apt-get install podman): %v", err)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return nil, err
	}
	// podman's defaults raise RLIMIT_NOFILE and RLIMIT_NPROC, which a sandbox
	// may refuse: keep the test's own open-file limit, a modest process limit.
	ulimits := []string{"--network", "host", "--ulimit", fmt.Sprintf("nofile=%d:%d", lim.Cur, lim.Max), "--ulimit", "nproc=4096:4096"}
	d := &dockerCLI{name: "podman", base: []string{"--root", tl.root, "--runroot", tl.runroot, "--storage-driver", "vfs"}}
	candidates := [][]string{nil, {"--cgroups=disabled"}}
	if _, err := exec.LookPath("runc"); err == nil {
		candidates = append(candidates, []string{"--runtime", "runc"})
	}
	var why []string
	for i, c := range candidates {
		d.run = append(append([]string(nil), ulimits...), c...)
		out, err := d.cmd(d.runArgs(fmt.Sprintf("podman-probe-%d-%d", os.Getpid(), i), tl.image, nil, []string{"etcd", "--version"})...).CombinedOutput()
		if err == nil && strings.Contains(string(out), "etcd Version: "+newest) {
			return d, nil
		}
		why = append(why, fmt.Sprintf("podman run %s: %v: %s", strings.Join(c, " "), err, lastLine(string(out))))
	}
	return nil, fmt.Errorf("podman cannot run a container here: %s", strings.Join(why, "; "))
}

func lastLine(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return l[len(l)-1]
}

// testDockerRun runs the invocations of the Kubernetes etcd image (which has no
// ENTRYPOINT) for real: `docker run IMAGE etcd --version`, `… etcdctl version`,
// `… etcdutl version`, `… /usr/local/bin/etcd --version` answer as the newest
// bundled release (TARGET_VERSION picks another); `docker run IMAGE -- <etcd args>`
// is migrate as before (the 3.4.13 fixture walked to 3.7.3 and served); and `docker
// run IMAGE etcd --data-dir=/var/lib/etcd …` on data written by 3.5.35 without
// version.txt migrates it, then serves it as etcd 3.7.3, the backup inside the
// mounted dir.
func testDockerRun(t *testing.T, tl *tool, binDir string, d35 kubeadmData) {
	d, err := newDockerCLI(t, tl)
	if err != nil {
		t.Skipf("SKIPPED: the docker run invocations need a docker-compatible CLI that runs containers here: %v", err)
	}
	t.Logf("docker-compatible CLI: %s %s (run flags %q)", d.name, strings.Join(d.base, " "), d.run)
	n := 0
	oneShot := func(opts, args []string) (int, string, time.Duration) {
		n++
		start := time.Now()
		code, out := runExit(t, d.cmd(d.runArgs(fmt.Sprintf("dockerrun-%d-%d", os.Getpid(), n), tl.image, opts, args)...))
		return code, out, time.Since(start)
	}
	for _, tc := range []struct {
		opts, args []string
		want       string
	}{
		{nil, []string{"etcd", "--version"}, "etcd Version: " + newest},
		{nil, []string{"etcdctl", "version"}, "etcdctl version: " + newest},
		{nil, []string{"etcdutl", "version"}, "etcdutl version: " + newest},
		{nil, []string{"/usr/local/bin/etcd", "--version"}, "etcd Version: " + newest},
		{[]string{"-e", "TARGET_VERSION=3.6.16"}, []string{"etcd", "--version"}, "etcd Version: 3.6.16"},
		{nil, []string{"etcdctl-3.5.35", "version"}, "etcdctl version: 3.5.35"},
		{nil, []string{"--help"}, "migrate [flags] [-- ETCD-ARGS...]"},
	} {
		code, out, took := oneShot(tc.opts, tc.args)
		if code != 0 || !strings.Contains(out, tc.want) {
			t.Errorf("%s run %s IMAGE %s: exit %d, output %q; want %q", d.name, strings.Join(tc.opts, " "), strings.Join(tc.args, " "), code, out, tc.want)
		} else {
			t.Logf("%s run %s IMAGE %s: %q in %v", d.name, strings.Join(tc.opts, " "), strings.Join(tc.args, " "), tc.want, took.Round(time.Millisecond))
		}
	}

	// `docker run IMAGE -- <etcd args>`: migrate, the image's entrypoint, as before.
	f34 := etcdtest.ExtractFixture(t, fixtureEtcd3)
	s := etcdtest.Serve(t, binDir, "3.4.13", etcdtest.CopyDir(t, f34))
	want34 := s.DumpAll(t)
	s.Stop()
	dataDir := filepath.Join(t.TempDir(), "data")
	if out, err := exec.Command("cp", "-a", f34, dataDir).CombinedOutput(); err != nil {
		t.Fatalf("copy fixture: %v: %s", err, out)
	}
	client, peer, private := etcdtest.FreePort(t), etcdtest.FreePort(t), etcdtest.FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", client)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peer)
	c := d.serve(t, tl.image, "dockerrun-migrate", url, newest,
		[]string{"-v", dataDir + ":/var/etcd/data", "-e", "ETCD_NAME=etcd-member", "-e", fmt.Sprintf("LISTEN_CLIENT_URLS=http://127.0.0.1:%d", private)},
		[]string{"--", "--listen-client-urls=" + url, "--advertise-client-urls=" + url, "--listen-peer-urls=" + peerURL})
	if diffs := etcdtest.Compare(want34, c.dump(t), 10); len(diffs) > 0 {
		t.Errorf("%s run IMAGE -- …: etcd %s serves another keyspace:\n%s", d.name, newest, strings.Join(diffs, "\n"))
	}
	if !strings.Contains(c.c.log.String(), `msg="migration done" version_txt=`+newest+"/etcd3") {
		t.Errorf("%s run IMAGE -- …: no migration logged:\n%s", d.name, c.c.log)
	}
	t.Logf("%s run IMAGE -- <etcd args> on the 3.4.13 fixture: migrate walked it, etcd %s answered a read after %v", d.name, newest, c.readyAfter.Round(time.Millisecond))
	c.stopCLI(t, d)

	// `docker run IMAGE etcd --data-dir=/var/lib/etcd …`: data written by 3.5.35
	// without version.txt, only the data dir mounted.
	h := newKubeadmHost(t, d35.dir)
	client, peer, private = etcdtest.FreePort(t), etcdtest.FreePort(t), etcdtest.FreePort(t)
	url, peerURL = fmt.Sprintf("http://127.0.0.1:%d", client), fmt.Sprintf("http://127.0.0.1:%d", peer)
	c = d.serve(t, tl.image, "dockerrun-etcd", url, newest,
		[]string{"-v", h.dataDir + ":" + kubeadmDataDir, "-e", fmt.Sprintf("LISTEN_CLIENT_URLS=http://127.0.0.1:%d", private)},
		[]string{"etcd", "--name=cp-0", "--data-dir=" + kubeadmDataDir, "--listen-client-urls=" + url, "--advertise-client-urls=" + url,
			"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=" + peerURL, "--initial-cluster=cp-0=" + peerURL, "--snapshot-count=10000"})
	if diffs := etcdtest.Compare(d35.want, c.dump(t), 10); len(diffs) > 0 {
		t.Errorf("%s run IMAGE etcd …: etcd %s serves another keyspace:\n%s", d.name, newest, strings.Join(diffs, "\n"))
	}
	if got, want := upgradeSteps(c.c.log.String()), []string{"3.5->3.6", "3.6->3.7"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("%s run IMAGE etcd …: upgrade steps %q, want %q:\n%s", d.name, got, want, c.c.log)
	}
	if _, err := os.Stat(filepath.Join(h.dataDir, ".etcd-migrate-backup", "etcd.bak", "member")); err != nil {
		t.Errorf("%s run IMAGE etcd …: no backup inside the mounted data dir: %v", d.name, err)
	}
	t.Logf("%s run IMAGE etcd --data-dir=/var/lib/etcd … on data written by 3.5.35: walked 3.5 -> 3.7, etcd %s answered a read after %v; backup inside the mount",
		d.name, newest, c.readyAfter.Round(time.Millisecond))
	c.stopCLI(t, d)
}

// serve starts `<cli> run … IMAGE args` in the background and waits until its etcd
// answers on url as etcd-<version>; it reuses the buildah path's waitServed.
func (d *dockerCLI) serve(t *testing.T, image, name, url, version string, opts, args []string) *served {
	t.Helper()
	name = fmt.Sprintf("%s-%d", name, os.Getpid())
	c := &container{tl: &tool{name: d.name}, name: name, log: &etcdtest.SyncBuffer{}, done: make(chan struct{})}
	c.cmd = d.cmd(d.runArgs(name, image, opts, args)...)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.started = time.Now()
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		if !c.exited() {
			_ = d.cmd("rm", "-f", name).Run()
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		}
	})
	return waitServed(t, c, url, version, "")
}

// stopCLI stops a container started by dockerCLI.serve: `<cli> stop` (SIGTERM to
// etcd, the container's process after the exec), then waits for `run` to return.
func (s *served) stopCLI(t *testing.T, d *dockerCLI) {
	t.Helper()
	if out, err := d.cmd("stop", "-t", "10", s.c.name).CombinedOutput(); err != nil && !s.c.exited() {
		t.Errorf("%s stop %s: %v: %s", d.name, s.c.name, err, out)
	}
	select {
	case <-s.c.done:
	case <-time.After(30 * time.Second):
		t.Errorf("container %s did not stop", s.c.name)
		_ = syscall.Kill(-s.c.cmd.Process.Pid, syscall.SIGKILL)
	}
}
