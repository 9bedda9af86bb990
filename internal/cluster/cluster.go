// Package cluster is a test harness for real multi-member etcd clusters on one
// machine: members on 127.0.0.2, .3, .4 (.5, .6), peer TLS with client-certificate
// auth from a CA made in the test, one member listening for peers on all
// interfaces as manifests often do. It generates data with a real etcd, serves the
// members' data dirs with any etcd version, dumps each member's own copy, runs
// migrate per member, and keeps a writer going through restarts.
//
// It runs etcd directly (not through pkg/etcdproc, which shapes a private
// single-member step etcd): the harness must run members exactly as a static pod
// would, and must stay an oracle independent of the code under test.
package cluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// Token is the --initial-cluster-token every generated cluster uses.
const Token = "etcd-migrate-ha-test"

// AllInterfacesMember is the index of the member whose peer listener is
// https://0.0.0.0:<port> while it advertises its own address.
const AllInterfacesMember = 1

// Member is one member's identity, files and URLs.
type Member struct {
	Index int
	Name  string // member-<Index>
	IP    string // 127.0.0.<Index+2>
	// DataDir is etcd's --data-dir and migrate's DATA_DIRECTORY (version.txt lives
	// here, etcd's member/ dir inside).
	DataDir string
	// PeerURL is the advertised peer URL https://<IP>:<port>; ListenPeerURL equals
	// it except for AllInterfacesMember (https://0.0.0.0:<port>).
	PeerURL, ListenPeerURL string
	PeerPort               int
	// ClientURL is the served etcd's plain-HTTP client URL on the member's address.
	ClientURL  string
	ClientPort int
	// Peer TLS files.
	CAFile, CertFile, KeyFile string

	mu   sync.Mutex
	etcd *etcdProc   // etcd started by Serve
	run  *MigrateRun // the last migrate started by RunMigrate
}

// Cluster is a set of members that share one initial cluster.
type Cluster struct {
	Members []*Member
	// InitialCluster is name=peerURL for every member, comma separated.
	InitialCluster string
	// Generated is the version the data was written with.
	Generated string
	binDir    string
	t         testing.TB
}

// New lays out n members (ports, certificates, dirs) without starting anything.
func New(t testing.TB, binDir string, n int) *Cluster {
	t.Helper()
	if n < 1 || n > 5 {
		t.Fatalf("cluster of %d members: 1 to 5 supported", n)
	}
	root := t.TempDir()
	pki, err := newPeerTLS(root)
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{binDir: binDir, t: t}
	taken := map[int]bool{}
	var ic []string
	for i := 0; i < n; i++ {
		m := &Member{Index: i, Name: fmt.Sprintf("member-%d", i), IP: fmt.Sprintf("127.0.0.%d", i+2), CAFile: pki.caFile}
		m.DataDir = filepath.Join(root, m.Name)
		if err := os.MkdirAll(m.DataDir, 0o700); err != nil {
			t.Fatal(err)
		}
		peerHost := m.IP
		if i == AllInterfacesMember {
			peerHost = "0.0.0.0"
		}
		m.PeerPort = freePort(t, peerHost, taken)
		m.ClientPort = freePort(t, m.IP, taken)
		m.PeerURL = fmt.Sprintf("https://%s:%d", m.IP, m.PeerPort)
		m.ListenPeerURL = fmt.Sprintf("https://%s:%d", peerHost, m.PeerPort)
		m.ClientURL = fmt.Sprintf("http://%s:%d", m.IP, m.ClientPort)
		if m.CertFile, m.KeyFile, err = pki.memberCert(int64(i+2), m.Name, net.ParseIP(m.IP)); err != nil {
			t.Fatal(err)
		}
		ic = append(ic, m.Name+"="+m.PeerURL)
		c.Members = append(c.Members, m)
	}
	c.InitialCluster = strings.Join(ic, ",")
	t.Cleanup(c.StopAll)
	return c
}

// freePort returns a port free on host (and every interface) a moment ago and not
// yet given to another member.
func freePort(t testing.TB, host string, taken map[int]bool) int {
	t.Helper()
	for {
		if p := etcdtest.FreePortOn(t, host); !taken[p] {
			taken[p] = true
			return p
		}
	}
}

// Args is the served etcd's command line for m, as a static pod manifest gives it
// (and what goes after `--` to migrate). --initial-cluster-state is left out: it is
// etcd's default "new" on the first member of a kubeadm cluster and "existing" on
// the others, and etcd ignores it, like --initial-cluster and the token, on a data
// dir that already has a member.
func (c *Cluster) Args(m *Member) []string {
	return []string{
		"--name=" + m.Name,
		"--data-dir=" + m.DataDir,
		"--listen-client-urls=" + m.ClientURL,
		"--advertise-client-urls=" + m.ClientURL,
		"--listen-peer-urls=" + m.ListenPeerURL,
		"--initial-advertise-peer-urls=" + m.PeerURL,
		"--initial-cluster=" + c.InitialCluster,
		"--initial-cluster-token=" + Token,
		"--peer-client-cert-auth=true",
		"--peer-trusted-ca-file=" + m.CAFile,
		"--peer-cert-file=" + m.CertFile,
		"--peer-key-file=" + m.KeyFile,
	}
}

// Generate writes a 3-member cluster's data with etcd-<version>: keys keys (see
// Populate), then a graceful stop of every member and version.txt
// "<version>/etcd3" in each data dir.
func Generate(t testing.TB, binDir, version string, keys int) *Cluster {
	t.Helper()
	return GenerateN(t, binDir, version, keys, 3)
}

// GenerateN is Generate with n members.
func GenerateN(t testing.TB, binDir, version string, keys, n int) *Cluster {
	t.Helper()
	start := time.Now()
	c := New(t, binDir, n)
	c.Generated = version
	c.start(t, version, "--initial-cluster-state=new")
	if err := c.WaitLeader(60 * time.Second); err != nil {
		t.Fatalf("generate: %v\n%s", err, c.Logs())
	}
	if err := c.Populate(keys); err != nil {
		t.Fatalf("generate: %v\n%s", err, c.Logs())
	}
	c.StopAll()
	for _, m := range c.Members {
		if err := os.WriteFile(filepath.Join(m.DataDir, "version.txt"), []byte(version+"/etcd3\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("generated %d-member %s cluster with %d keys in %v", n, version, keys, time.Since(start).Round(time.Millisecond))
	return c
}

// Serve starts every member with etcd-<version> on its data dir, as the served
// etcd runs after migrate, and waits for a leader every member agrees on.
func (c *Cluster) Serve(t testing.TB, version string) {
	t.Helper()
	c.start(t, version)
	if err := c.WaitLeader(60 * time.Second); err != nil {
		t.Fatalf("serve %s: %v\n%s", version, err, c.Logs())
	}
}

// start starts every member concurrently with etcd-<version>.
func (c *Cluster) start(t testing.TB, version string, extra ...string) {
	t.Helper()
	for _, m := range c.Members {
		if err := c.StartMember(m, version, extra...); err != nil {
			t.Fatal(err)
		}
	}
}

// StartMember starts m's etcd-<version> with Args(m) plus extra; it does not wait.
func (c *Cluster) StartMember(m *Member, version string, extra ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.etcd != nil && !m.etcd.exited() {
		return fmt.Errorf("%s: etcd already running", m.Name)
	}
	p, err := startEtcd(filepath.Join(c.binDir, "etcd-"+version), append(c.Args(m), extra...))
	if err != nil {
		return fmt.Errorf("%s: %w", m.Name, err)
	}
	m.etcd = p
	return nil
}

// StopMember stops the etcd Serve started for m, gracefully (SIGTERM, SIGKILL
// after 30 s); it reports whether it had to kill.
func (c *Cluster) StopMember(m *Member) (killed bool) {
	m.mu.Lock()
	p := m.etcd
	m.etcd = nil
	m.mu.Unlock()
	if p == nil {
		return false
	}
	return p.stop(30 * time.Second)
}

// StopAll stops every member's etcd and migrate: the followers together, then
// the leader. A leader stopped alongside its followers would try to hand its
// leadership to one of them and wait seconds for it.
func (c *Cluster) StopAll() {
	leader := c.leaderIndex()
	var wg sync.WaitGroup
	stop := func(m *Member) {
		defer wg.Done()
		if c.StopMember(m) {
			c.t.Logf("%s: etcd killed after the stop timeout", m.Name)
		}
		m.mu.Lock()
		r := m.run
		m.mu.Unlock()
		if r != nil {
			r.Stop()
		}
	}
	for i, m := range c.Members {
		if i != leader {
			wg.Add(1)
			go stop(m)
		}
	}
	wg.Wait()
	if leader >= 0 {
		wg.Add(1)
		stop(c.Members[leader])
	}
}

// leaderIndex is the index of the member the first answering member names
// leader, or -1.
func (c *Cluster) leaderIndex() int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for _, m := range c.Members {
		m.mu.Lock()
		running := m.etcd != nil && !m.etcd.exited()
		m.mu.Unlock()
		if !running {
			continue
		}
		st, err := m.status(ctx)
		if err != nil || st.Leader == 0 {
			continue
		}
		for i, mm := range c.Members {
			if id, err := mm.memberID(ctx); err == nil && id == st.Leader {
				return i
			}
		}
		return -1
	}
	return -1
}

// Logs is the tail of every running or last etcd's output, for failure messages.
func (c *Cluster) Logs() string {
	var b strings.Builder
	for _, m := range c.Members {
		m.mu.Lock()
		p := m.etcd
		m.mu.Unlock()
		if p != nil {
			fmt.Fprintf(&b, "--- %s etcd log (last 40 lines):\n%s\n", m.Name, lastLines(p.log.String(), 40))
		}
	}
	return b.String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WaitLeader waits until every member answers a status with the same, non-zero
// leader.
func (c *Cluster) WaitLeader(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last error
	for {
		leaders := map[uint64]bool{}
		last = nil
		for _, m := range c.Members {
			st, err := m.status(ctx)
			if err != nil {
				last = fmt.Errorf("%s: %w", m.Name, err)
				break
			}
			if st.Leader == 0 {
				last = fmt.Errorf("%s has no leader", m.Name)
				break
			}
			leaders[st.Leader] = true
		}
		if last == nil && len(leaders) == 1 {
			return nil
		}
		if last == nil {
			last = fmt.Errorf("members disagree on the leader: %v", leaders)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no leader every member agrees on within %v: %w", timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
