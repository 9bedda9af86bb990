package image

// kubeadm HA, rolling (issue 22): three kubeadm control-plane members, each
// kubeadm's 3.5-era etcd static pod (testdata/kubeadm-etcd-3.5.yaml) rendered for
// its own loopback address, start as a new cluster on the stock etcd 3.5.35 (the
// Kubernetes etcd image's stand-in: the image's own /usr/local/bin/etcd-3.5.35 as
// the container's command, so no migrate runs and no version.txt is written, as
// with registry.k8s.io/etcd). Then, as `kubeadm upgrade` does one control-plane
// node at a time, each member's container is stopped and the same pod started
// with this image and TARGET_VERSION=3.6.16: migrate (the image's etcd) hands the
// member over to etcd 3.6.16 on the same data dir and flags while the other two
// keep serving 3.5. A writer writes through all three client URLs throughout.

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

const (
	haRollingFrom   = "3.5.35"
	haRollingTarget = "3.6.16"
	haRollingPrefix = "/ha-rolling/"
	// haRollingMaxGap bounds the time without an acknowledged write: a leader
	// election takes a second or two; much longer means the cluster lost quorum.
	// Generous: the machine may be busy with other tests.
	haRollingMaxGap = 15 * time.Second
)

// haMember is one control-plane node of the test: cp-<idx> on 127.0.0.<idx+2>.
type haMember struct {
	idx       int
	name, ip  string
	ports     kubeadmPorts
	host      *kubeadmHost
	pod       kubeadmPod
	clientURL string // https://<ip>:<client port>
	probeURL  string // the manifest's startup probe, as the kubelet runs it
	c         *container
}

// testKubeadmHARolling: see the top of this file. It checks that quorum holds
// throughout (the writer acknowledges writes during every member's replacement and
// never goes haRollingMaxGap without one), that every acknowledged write is
// served afterwards by every member with its value, that the cluster version ends
// at 3.6.0, that the cluster ID and the member IDs are unchanged, and that every
// data dir records 3.6.16/etcd3.
func testKubeadmHARolling(t *testing.T, tl *tool) {
	begin := time.Now()
	members := make([]*haMember, 3)
	var initial []string
	for i := range members {
		m := &haMember{idx: i, name: fmt.Sprintf("cp-%d", i), ip: fmt.Sprintf("127.0.0.%d", i+2),
			ports: kubeadmPorts{etcdtest.FreePort(t), etcdtest.FreePort(t), etcdtest.FreePort(t)}}
		host := t.TempDir()
		m.host = &kubeadmHost{dataDir: filepath.Join(host, "var-lib-etcd"), pki: filepath.Join(host, "etc-kubernetes-pki-etcd")}
		// kubeadm's hostPath volumes are DirectoryOrCreate: empty dirs on a new node.
		for _, d := range []string{m.host.dataDir, m.host.pki} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		m.clientURL = fmt.Sprintf("https://%s:%d", m.ip, m.ports.client)
		initial = append(initial, fmt.Sprintf("%s=https://%s:%d", m.name, m.ip, m.ports.peer))
		members[i] = m
	}
	clientTLS := haKubeadmPKI(t, members)
	for _, m := range members {
		m.host.tls = clientTLS
		m.pod = renderKubeadmHA(t, kubeadm35, tl.image, m, strings.Join(initial, ","))
		sp := m.pod.Spec.Containers[0].StartupProbe
		if sp == nil {
			t.Fatalf("%s has no startup probe", kubeadm35)
		}
		g := sp.HTTPGet
		m.probeURL = fmt.Sprintf("%s://%s:%d%s", strings.ToLower(g.Scheme), g.Host, g.Port, g.Path)
	}
	hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: clientTLS.Clone()}}
	defer hc.CloseIdleConnections()

	// The cluster on the stock etcd 3.5.35: kubeadm's command with the image's
	// etcd-3.5.35 in place of `etcd` (no migrate).
	for _, m := range members {
		cmd := append([]string{"/usr/local/bin/etcd-" + haRollingFrom}, m.pod.Spec.Containers[0].Command[1:]...)
		m.start(t, tl, fmt.Sprintf("kubeadm-ha-%s-%s", m.name, haRollingFrom), cmd, nil)
	}
	for _, m := range members {
		m.waitServing(t, hc, haRollingFrom, m.c.started.Add(3*time.Minute))
	}
	haWaitHealthy(t, hc, members, time.Minute)
	early, _ := getVersionsWith(hc, members[0].clientURL)
	t.Logf("3 members of kubeadm's 3.5-era pod on stock etcd %s (%v, %v, %v) serving over TLS %v after the first container start (versions %+v)",
		haRollingFrom, members[0].clientURL, members[1].clientURL, members[2].clientURL, time.Since(members[0].c.started).Round(time.Millisecond), early)
	// A new cluster's leader first records cluster version 3.0.0 when it does not
	// yet know every member's version, and raises it to 3.5.0 a few seconds later
	// (etcd's monitorVersions): a cluster kubeadm upgrades has long been at 3.5.0.
	haWaitClusterVersion(t, hc, members, "3.5.0", 2*time.Minute)
	t.Logf("cluster version 3.5.0 on every member %v after the first container start", time.Since(members[0].c.started).Round(time.Millisecond))
	for _, m := range members {
		if _, err := os.Stat(filepath.Join(m.host.dataDir, "version.txt")); !os.IsNotExist(err) {
			t.Fatalf("%s: the stock etcd's data dir has a version.txt (%v): not how the Kubernetes image leaves it", m.name, err)
		}
	}

	var endpoints []string
	for _, m := range members {
		endpoints = append(endpoints, m.clientURL)
	}
	before := haIdentityOf(t, members, clientTLS)
	w := startHAWriter(t, endpoints, clientTLS)
	time.Sleep(time.Second)
	if w.acked() == 0 {
		t.Fatalf("the writer acknowledged no write in its first second on the healthy 3.5.35 cluster: %s", w.summary())
	}

	env := privateStepURL(t)
	env["TARGET_VERSION"] = haRollingTarget
	for _, m := range members {
		a0, f0 := w.acked(), w.failures()
		stopAt := time.Now()
		m.c.stop(t)
		stopped := time.Since(stopAt)
		m.start(t, tl, fmt.Sprintf("kubeadm-ha-%s-%s", m.name, haRollingTarget), m.pod.Spec.Containers[0].Command, env)
		m.waitServing(t, hc, haRollingTarget, stopAt.Add(4*time.Minute))
		serving, startToServing := time.Since(stopAt), time.Since(m.c.started)
		aServing := w.acked()
		haWaitHealthy(t, hc, members, 2*time.Minute)
		healthy := time.Since(stopAt)
		a1, f1 := w.acked(), w.failures()
		t.Logf("rolling member %d: stop to serving %d ms (%s: stop %d ms, container start to etcd %s healthy on %s %d ms; all 3 members healthy after %d ms); writer meanwhile: %d acknowledged (%d before %s served), %d failed",
			m.idx, serving.Milliseconds(), m.name, stopped.Milliseconds(), haRollingTarget, m.probeURL, startToServing.Milliseconds(),
			healthy.Milliseconds(), a1-a0, aServing-a0, m.name, f1-f0)
		if aServing == a0 {
			t.Errorf("rolling member %d (%s): the writer acknowledged no write between the stop and etcd %s serving (%v): quorum lost? %s\n%s",
				m.idx, m.name, haRollingTarget, serving.Round(time.Millisecond), w.summary(), m.c.log)
		}
		log := m.c.log.String()
		for _, l := range []string{"kind=hand-over", `msg="migration done" version_txt=` + haRollingTarget + "/etcd3", "msg=exec binary=/usr/local/bin/etcd-" + haRollingTarget} {
			if !strings.Contains(log, l) {
				t.Errorf("rolling member %d (%s): container log lacks %q:\n%s", m.idx, m.name, l, log)
			}
		}
		if t.Failed() {
			return
		}
		t.Logf("rolling member %d: migrate's steps before the exec of etcd %s: %s", m.idx, haRollingTarget, stepsDone(log))
	}

	// The cluster version moves once every member runs 3.6 (the leader checks
	// every few seconds).
	final := haWaitClusterVersion(t, hc, members, "3.6.0", 2*time.Minute)
	time.Sleep(500 * time.Millisecond)
	acked, failed, maxGap := w.stop()
	if maxGap > haRollingMaxGap {
		t.Errorf("the writer went %v without an acknowledged write (bound %v): the cluster lost quorum; %s", maxGap.Round(time.Millisecond), haRollingMaxGap, w.summary())
	}
	// Every acknowledged write, on every member, through a linearizable read of its
	// own client URL.
	for _, m := range members {
		got := haReadPrefix(t, m, clientTLS)
		var lost []string
		for k, v := range w.ackedKeys() {
			if g, ok := got[k]; !ok || g != v {
				lost = append(lost, fmt.Sprintf("%s (present %v, value %q, want %q)", k, ok, g, v))
			}
		}
		sort.Strings(lost)
		if n := len(lost); n > 0 {
			if n > 10 {
				lost = append(lost[:10], "…")
			}
			t.Errorf("%s serves %d of the %d acknowledged writes as written; %d lost or changed: %s", m.name, acked-n, acked, n, strings.Join(lost, "; "))
		}
	}
	after := haIdentityOf(t, members, clientTLS)
	if before.String() != after.String() {
		t.Errorf("cluster or member IDs changed by the rolling upgrade:\nbefore %s\nafter  %s", before, after)
	}
	for _, m := range members {
		if v := readFile(t, filepath.Join(m.host.dataDir, "version.txt")); v != haRollingTarget+"/etcd3\n" {
			t.Errorf("%s: version.txt = %q, want %q", m.name, v, haRollingTarget+"/etcd3\n")
		}
	}
	t.Logf("writer: %d writes acknowledged, each checked on every member; %d failed (unacknowledged; %s); longest time without an acknowledged write %v",
		acked, failed, w.errorKinds(), maxGap.Round(time.Millisecond))
	t.Logf("after the rolling upgrade: versions %+v on every member; cluster ID %s unchanged; rolling test total %v",
		final, after, time.Since(begin).Round(time.Millisecond))
}

// renderKubeadmHA renders the manifest as renderKubeadm does, for member m of a
// cluster of several: the node's advertise address becomes m's own loopback
// address (127.0.0.1 stays where kubeadm wrote it: the first client URL and the
// metrics URL), kubeadm's default ports m's free ones, the image the test's; then
// the node name cp-0 becomes m's, --initial-cluster lists every member, and
// --initial-cluster-state=new is added, as for a cluster bootstrapped from three
// members at once.
func renderKubeadmHA(t *testing.T, manifest, image string, m *haMember, initialCluster string) kubeadmPod {
	t.Helper()
	pod := renderKubeadmAt(t, manifest, image, m.ip, m.ports)
	cmd := pod.Spec.Containers[0].Command
	replaced := 0
	for i, a := range cmd {
		switch {
		case a == "--name=cp-0":
			cmd[i], replaced = "--name="+m.name, replaced+1
		case strings.HasPrefix(a, "--initial-cluster="):
			cmd[i], replaced = "--initial-cluster="+initialCluster, replaced+1
		case strings.HasPrefix(a, "--initial-cluster-state="):
			t.Fatalf("%s already sets %s", manifest, a)
		}
	}
	if replaced != 2 || cmd[0] != "etcd" {
		t.Fatalf("%s: want command etcd with --name=cp-0 and one --initial-cluster: %q", manifest, cmd)
	}
	pod.Spec.Containers[0].Command = append(cmd, "--initial-cluster-state=new")
	return pod
}

// haKubeadmPKI writes each member's /etc/kubernetes/pki/etcd: kubeadmPKIFiles makes
// the CA and the healthcheck client certificate in the first member's dir; every
// member gets that CA and client certificate, and server and peer certificates of
// its own, signed by the CA, as `kubeadm init phase certs etcd-*` on each node with
// the shared CA: CN and DNS SAN the node name and localhost, IP SANs the node's
// address, 127.0.0.1 and ::1 (etcd checks a peer's client certificate against
// the connection's source address, 127.0.0.1 on one machine). It returns the
// client TLS config (healthcheck client certificate, the CA).
func haKubeadmPKI(t *testing.T, members []*haMember) *tls.Config {
	t.Helper()
	first := members[0].host.pki
	cfg := kubeadmPKIFiles(t, first)
	caPEM, err := os.ReadFile(filepath.Join(first, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(first, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	cb, _ := pem.Decode(caPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		t.Fatalf("%s: ca.crt or ca.key is not PEM", first)
	}
	ca, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	serial := int64(100)
	for _, m := range members {
		if m.host.pki != first {
			for _, f := range []string{"ca.crt", "ca.key", "healthcheck-client.crt", "healthcheck-client.key"} {
				b, err := os.ReadFile(filepath.Join(first, f))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(m.host.pki, f), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, f := range []string{"server", "peer"} {
			serial++
			key, err := ecdsa.GenerateKey(caKey.Curve, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			tmpl := &x509.Certificate{
				SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: m.name},
				NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
				KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
				ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
				DNSNames:    []string{m.name, "localhost"},
				IPAddresses: []net.IP{net.ParseIP(m.ip), net.IPv4(127, 0, 0, 1), net.IPv6loopback},
			}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
			if err != nil {
				t.Fatal(err)
			}
			kder, err := x509.MarshalECPrivateKey(key)
			if err != nil {
				t.Fatal(err)
			}
			for name, blk := range map[string]*pem.Block{f + ".crt": {Type: "CERTIFICATE", Bytes: der}, f + ".key": {Type: "EC PRIVATE KEY", Bytes: kder}} {
				if err := os.WriteFile(filepath.Join(m.host.pki, name), pem.EncodeToMemory(blk), 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return cfg
}

// start runs the member's pod as startKubeadm does (each hostPath volume the
// host's stand-in, the manifest's env plus env), with command as the container's
// command.
func (m *haMember) start(t *testing.T, tl *tool, name string, command []string, env map[string]string) {
	t.Helper()
	ctr := m.pod.Spec.Containers[0]
	stand := map[string]string{kubeadmDataDir: m.host.dataDir, kubeadmPKI: m.host.pki}
	vols := map[string]string{}
	for _, v := range m.pod.Spec.Volumes {
		hp, ok := stand[v.HostPath.Path]
		if !ok {
			t.Fatalf("volume %s: no stand-in for hostPath %s", v.Name, v.HostPath.Path)
		}
		vols[v.Name] = hp
	}
	mounts := map[string]string{}
	for _, vm := range ctr.VolumeMounts {
		mounts[vols[vm.Name]] = vm.MountPath
	}
	if len(mounts) != 2 || mounts[m.host.dataDir] != kubeadmDataDir || mounts[m.host.pki] != kubeadmPKI {
		t.Fatalf("mounts %v, want only the data dir at %s and the PKI at %s", mounts, kubeadmDataDir, kubeadmPKI)
	}
	e := map[string]string{}
	for _, kv := range ctr.Env {
		e[kv.Name] = kv.Value
	}
	for k, v := range env {
		e[k] = v
	}
	m.c = tl.start(t, name, runSpec{mounts: mounts, env: e, entrypoint: command})
}

// probe runs the manifest's startup probe: 200 and {"health":"true"}.
func (m *haMember) probe() error {
	hc := &http.Client{Timeout: 3 * time.Second}
	resp, err := hc.Get(m.probeURL)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"health":"true"`) {
		return fmt.Errorf("%s: %s %s", m.probeURL, resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

// waitServing waits until the member's client URL answers GET /version over TLS as
// etcd-<version> and its startup probe is healthy; a container that exits fails
// the test with its log.
func (m *haMember) waitServing(t *testing.T, hc *http.Client, version string, deadline time.Time) {
	t.Helper()
	for {
		v, err := getVersionsWith(hc, m.clientURL)
		if err == nil && v.Server != version {
			err = fmt.Errorf("serves etcd %s", v.Server)
		}
		if err == nil {
			if err = m.probe(); err == nil {
				return
			}
		}
		if m.c.exited() {
			code, _ := m.c.wait(t, 0)
			t.Fatalf("%s: container %s exited (%d) instead of serving etcd %s:\n%s", m.name, m.c.name, code, version, m.c.log)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: container %s: no healthy etcd %s on %s by the deadline (last: %v):\n%s", m.name, m.c.name, version, m.clientURL, err, m.c.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// haWaitHealthy waits until every member's startup probe is healthy and its
// /version answers over TLS.
func haWaitHealthy(t *testing.T, hc *http.Client, members []*haMember, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var bad []string
		for _, m := range members {
			if err := m.probe(); err != nil {
				bad = append(bad, fmt.Sprintf("%s: %v", m.name, err))
			} else if _, err := getVersionsWith(hc, m.clientURL); err != nil {
				bad = append(bad, fmt.Sprintf("%s: %v", m.name, err))
			}
		}
		if len(bad) == 0 {
			return
		}
		if time.Now().After(deadline) {
			var logs []string
			for _, m := range members {
				logs = append(logs, fmt.Sprintf("--- %s (%s):\n%s", m.name, m.c.name, lastLines(m.c.log.String(), 30)))
			}
			t.Fatalf("the cluster is not healthy on all 3 members within %v: %s\n%s", timeout, strings.Join(bad, "; "), strings.Join(logs, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// haWaitClusterVersion waits until every member's /version reports cluster
// version want; it returns the last member's answer.
func haWaitClusterVersion(t *testing.T, hc *http.Client, members []*haMember, want string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var bad []string
		var last string
		for _, m := range members {
			v, err := getVersionsWith(hc, m.clientURL)
			switch {
			case err != nil:
				bad = append(bad, fmt.Sprintf("%s: %v", m.name, err))
			case v.Cluster != want:
				bad = append(bad, fmt.Sprintf("%s: %+v", m.name, v))
			default:
				last = fmt.Sprintf("%+v", v)
			}
		}
		if len(bad) == 0 {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster version not %s on every member within %v: %s", want, timeout, strings.Join(bad, "; "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stepsDone lists the kind and duration of every "step done" line of a migrate log.
func stepsDone(log string) string {
	re := regexp.MustCompile(`msg="step done" kind=(\S+) .*duration_ms=(\d+)`)
	var out []string
	for _, m := range re.FindAllStringSubmatch(log, -1) {
		out = append(out, m[1]+" "+m[2]+" ms")
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// haIdentity is the cluster ID and each member's ID by name, as the member list
// says and as each member's own status header confirms.
type haIdentity struct {
	clusterID uint64
	members   map[string]uint64
}

func (id haIdentity) String() string {
	var names []string
	for n := range id.members {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := []string{fmt.Sprintf("%x", id.clusterID)}
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s=%x", n, id.members[n]))
	}
	return strings.Join(parts, " ")
}

func haIdentityOf(t *testing.T, members []*haMember, cfg *tls.Config) haIdentity {
	t.Helper()
	var id haIdentity
	for i, m := range members {
		cl := haClient(t, []string{m.clientURL}, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		ml, err := cl.MemberList(ctx)
		if err != nil {
			cancel()
			cl.Close()
			t.Fatalf("%s: member list: %v", m.name, err)
		}
		st, err := cl.Status(ctx, m.clientURL)
		cancel()
		cl.Close()
		if err != nil {
			t.Fatalf("%s: status: %v", m.name, err)
		}
		got := haIdentity{clusterID: ml.Header.ClusterId, members: map[string]uint64{}}
		for _, mm := range ml.Members {
			got.members[mm.Name] = mm.ID
		}
		if len(got.members) != len(members) || got.members[m.name] != st.Header.MemberId || st.Header.ClusterId != got.clusterID {
			t.Fatalf("%s: member list %s, its own status member %x cluster %x: want %d members, itself among them", m.name, got, st.Header.MemberId, st.Header.ClusterId, len(members))
		}
		if i == 0 {
			id = got
		} else if got.String() != id.String() {
			t.Fatalf("%s says %s, %s says %s", members[0].name, id, m.name, got)
		}
	}
	return id
}

func haClient(t *testing.T, endpoints []string, cfg *tls.Config) *clientv3.Client {
	t.Helper()
	cl, err := clientv3.New(clientv3.Config{Endpoints: endpoints, TLS: cfg.Clone(), DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("client of %v: %v", endpoints, err)
	}
	return cl
}

// haReadPrefix reads the writer's keys through m's client URL alone (linearizable).
func haReadPrefix(t *testing.T, m *haMember, cfg *tls.Config) map[string]string {
	t.Helper()
	cl := haClient(t, []string{m.clientURL}, cfg)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := cl.Get(ctx, haRollingPrefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("%s: read the writer's keys: %v", m.name, err)
	}
	got := make(map[string]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		got[string(kv.Key)] = string(kv.Value)
	}
	return got
}

// haWriter puts keys continuously through a client of every member's client URL
// and records every acknowledged put.
type haWriter struct {
	cl         *clientv3.Client
	stopc      chan struct{}
	done       chan struct{}
	mu         sync.Mutex
	acks       map[string]string
	failed     int
	errs       map[string]int
	lastAck    time.Time
	maxGap     time.Duration
	stopOnce   sync.Once
	closeOnce  sync.Once
	finishedAt time.Time
}

func startHAWriter(t *testing.T, endpoints []string, cfg *tls.Config) *haWriter {
	t.Helper()
	w := &haWriter{cl: haClient(t, endpoints, cfg), stopc: make(chan struct{}), done: make(chan struct{}),
		acks: map[string]string{}, errs: map[string]int{}, lastAck: time.Now()}
	go w.run()
	t.Cleanup(func() { w.stop(); w.closeOnce.Do(func() { w.cl.Close() }) })
	return w
}

func (w *haWriter) run() {
	defer close(w.done)
	for i := 0; ; i++ {
		select {
		case <-w.stopc:
			return
		default:
		}
		// A key per attempt: a failed put may still have been applied, so none is
		// ever retried under the same key.
		k, v := fmt.Sprintf("%s%08d", haRollingPrefix, i), fmt.Sprintf(`{"seq":%d,"at":%q}`, i, time.Now().Format(time.RFC3339Nano))
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := w.cl.Put(ctx, k, v)
		cancel()
		w.mu.Lock()
		now := time.Now()
		if err != nil {
			w.failed++
			w.errs[errKind(err)]++
		} else {
			if gap := now.Sub(w.lastAck); gap > w.maxGap {
				w.maxGap = gap
			}
			w.lastAck = now
			w.acks[k] = v
		}
		w.mu.Unlock()
		if err != nil {
			time.Sleep(50 * time.Millisecond)
		} else {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// errKind is an error's text without what varies from one to the next (addresses
// and ports, numbers).
func errKind(err error) string {
	s := regexp.MustCompile(`\d+`).ReplaceAllString(err.Error(), "N")
	if r := []rune(s); len(r) > 120 {
		s = string(r[:120]) + "…"
	}
	return s
}

// stop stops writing (idempotent) and returns the acknowledged and failed counts
// and the longest time without an acknowledged put, up to the stop.
func (w *haWriter) stop() (acked, failed int, maxGap time.Duration) {
	w.stopOnce.Do(func() { close(w.stopc) })
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finishedAt.IsZero() {
		w.finishedAt = time.Now()
		if gap := w.finishedAt.Sub(w.lastAck); gap > w.maxGap {
			w.maxGap = gap
		}
	}
	return len(w.acks), w.failed, w.maxGap
}

func (w *haWriter) acked() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acks)
}

func (w *haWriter) failures() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failed
}

func (w *haWriter) ackedKeys() map[string]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.acks
}

func (w *haWriter) errorKinds() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var parts []string
	for k, n := range w.errs {
		parts = append(parts, fmt.Sprintf("%d× %s", n, k))
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "no errors"
	}
	return strings.Join(parts, " | ")
}

func (w *haWriter) summary() string {
	w.mu.Lock()
	acked, failed, gap := len(w.acks), w.failed, w.maxGap
	w.mu.Unlock()
	return fmt.Sprintf("writer: %d acknowledged, %d failed (%s), longest gap %v", acked, failed, w.errorKinds(), gap.Round(time.Millisecond))
}
