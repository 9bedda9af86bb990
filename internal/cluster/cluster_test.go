package cluster

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// TestGenerateServe: a generated 3-member 3.4.13 cluster served back with 3.4.13
// holds the same keyspace and leases on every member (serializable reads), one
// cluster ID and member list, and member 1's peer listener is on all interfaces
// while member 0's is on its own address only.
func TestGenerateServe(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	start := time.Now()
	c := Generate(t, binDir, "3.4.13", 2000)
	c.Serve(t, "3.4.13")
	if err := c.WaitSettled(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	want := c.Dump(t, c.Members[0])
	if n := len(want.Keys); n < 1500 || n > 2000 {
		t.Fatalf("member-0 holds %d keys, want the 2000 written minus the deleted", n)
	}
	if len(want.Leases) != 10 {
		t.Fatalf("member-0 holds %d leases, want 10", len(want.Leases))
	}
	for id, ttl := range want.LeaseTTL {
		if ttl != 3600 || len(want.Leases[id]) == 0 {
			t.Fatalf("lease %x: TTL %d, %d keys; want 3600 and keys attached", id, ttl, len(want.Leases[id]))
		}
	}
	id0 := c.Identity(t, c.Members[0])
	if len(id0.Members) != 3 {
		t.Fatalf("member list %v, want 3 members", id0.Members)
	}
	for _, m := range c.Members[1:] {
		if diffs := etcdtest.Compare(want, c.Dump(t, m), 10); len(diffs) > 0 {
			t.Fatalf("%s differs from member-0: %v", m.Name, diffs)
		}
		id := c.Identity(t, m)
		if id.ClusterID != id0.ClusterID || fmt.Sprint(id.Members) != fmt.Sprint(id0.Members) {
			t.Fatalf("%s: cluster %x members %v; member-0: cluster %x members %v", m.Name, id.ClusterID, id.Members, id0.ClusterID, id0.Members)
		}
		if id.MemberID != id0.Members[m.Name] {
			t.Fatalf("%s reports member ID %x, the list says %x", m.Name, id.MemberID, id0.Members[m.Name])
		}
	}
	for _, m := range c.Members {
		v, err := m.Versions(t.Context())
		if err != nil || v.Server != "3.4.13" || v.Cluster != "3.4.0" {
			t.Fatalf("%s /version: %+v, %v", m.Name, v, err)
		}
	}
	all := c.Members[AllInterfacesMember]
	for _, host := range []string{all.IP, "127.0.0.1"} {
		if err := dial(host, all.PeerPort); err != nil {
			t.Fatalf("%s listens for peers on 0.0.0.0: %v", all.Name, err)
		}
	}
	m0 := c.Members[0]
	if err := dial(m0.IP, m0.PeerPort); err != nil {
		t.Fatalf("%s peer listener: %v", m0.Name, err)
	}
	if err := dial("127.0.0.1", m0.PeerPort); err == nil {
		t.Fatalf("%s's peer port answers on 127.0.0.1: want its own address only", m0.Name)
	}
	t.Logf("generate + serve + checks: %v", time.Since(start).Round(time.Millisecond))
}

func dial(host string, port int) error {
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(host, fmt.Sprint(port)), 2*time.Second)
	if err != nil {
		return err
	}
	return conn.Close()
}

// TestRollingRestartWriter checks the harness's rolling pieces without migrate: a
// 3.6.16 cluster restarted member by member as 3.7.3 (the bare binaries) while a
// Writer writes; no acknowledged put is lost and the cluster version ends at 3.7.0.
func TestRollingRestartWriter(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	c := Generate(t, binDir, "3.6.16", 200)
	c.Serve(t, "3.6.16")
	w := c.StartWriter(t, "/writer/")
	time.Sleep(time.Second)
	for _, m := range c.Members {
		start, before := time.Now(), w.Acked()
		if c.StopMember(m) {
			t.Fatalf("%s killed on stop", m.Name)
		}
		if err := c.StartMember(m, "3.7.3"); err != nil {
			t.Fatal(err)
		}
		if _, err := m.WaitServer("3.7.3", time.Minute); err != nil {
			t.Fatalf("%v\n%s", err, c.Logs())
		}
		t.Logf("%s restarted as 3.7.3 in %v, %d puts acknowledged meanwhile", m.Name, time.Since(start).Round(time.Millisecond), w.Acked()-before)
	}
	if err := c.WaitClusterVersion("3.7.0", time.Minute); err != nil {
		t.Fatal(err)
	}
	acked, failed, gap := w.Stop()
	if acked == 0 {
		t.Fatal("the writer got no put acknowledged")
	}
	if diffs := w.Verify(t, c, 10); len(diffs) > 0 {
		t.Fatalf("lost: %v", diffs)
	}
	t.Logf("writer: %d acknowledged, %d failed, longest gap %v", acked, failed, gap.Round(time.Millisecond))
	// Verify can fail: one acknowledged put removed is reported.
	cl, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Delete(t.Context(), "/writer/00000000"); err != nil {
		t.Fatal(err)
	}
	if diffs := w.Verify(t, c, 10); len(diffs) != 1 || !strings.Contains(diffs[0], "/writer/00000000") {
		t.Fatalf("after deleting an acknowledged put, Verify says %v", diffs)
	}
	start := time.Now()
	c.StopAll()
	t.Logf("StopAll: %v", time.Since(start).Round(time.Millisecond))
}
