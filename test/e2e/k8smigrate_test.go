//go:build oldetcd

package e2e

// The Kubernetes etcd image's own migration cases (its migrate's integration test,
// cluster/images/etcd/migrate/integration_test.go), written as our own test with
// its versions spelled as it spells them: 3.0.17/etcd3 -> 3.1.12/etcd3 on one
// member; the same with a LISTEN_CLIENT_URLS list; three https-peer members
// migrated one after the other (a rolling upgrade); 3.1.12/etcd3 -> 3.0.17/etcd3
// on one member. (Its "oldest-newest-up" case is "v3-v3-up" again, with the same
// versions and members; it is not repeated here.) 3.1.12 is not bundled: migrate
// runs the bundled 3.1.20 for it and records 3.1.20 in version.txt.
//
// As there, every member starts from an empty data dir through migrate with the
// start version (here: migrate execs etcd on it), each member gets a key of its
// own written and read back through its own client URL, then one member at a time
// is stopped, migrated and started with the end version. On top of that: a small
// Kubernetes-like keyspace (pkg/cluster Populate: keys under /registry, leases,
// overwrites, deletes, a compaction) and every key's value, create/mod revision and
// version, every member, the cluster and member IDs, /version, version.txt and
// exit codes are checked. Peer TLS with a CA made in the test; members on 127.0.0.2
// (.3, .4); all traffic on loopback addresses. Run with the old releases built:
//
//	ETCD_MIGRATE_BIN_DIR=$PWD/_output/bin go test -tags oldetcd -count=1 -run TestOldK8s -v ./test/e2e/

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-migrate/etcd-migrate/internal/cluster"
	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// k8sCase is one case of the Kubernetes migrate's integration test.
type k8sCase struct {
	members int
	// start and end are TARGET_VERSION as Kubernetes spells them; startRan and
	// endRan the bundled releases that run them (and that version.txt records).
	start, startRan, end, endRan string
	// listenClientURLs: LISTEN_CLIENT_URLS is a list of two loopback URLs.
	listenClientURLs bool
}

// k8sKeys is the size of the keyspace Populate writes before the migration.
const k8sKeys = 40

// TestOldK8sMigrateUp is Kubernetes' "v3-v3-up" (and "oldest-newest-up"): one
// member, https peer, 3.0.17/etcd3 -> 3.1.12/etcd3. The member starts through
// migrate (TARGET_VERSION=3.0.17, exec) on an empty data dir; after the writes it
// is stopped and migrate TARGET_VERSION=3.1.12 takes its place: it logs that the
// bundled 3.1.20 runs for 3.1.12, takes one step, records 3.1.20/etcd3 and
// becomes etcd 3.1.20 (the same process), which serves every key with its value,
// create/mod revision and version, the leases with their keys and TTLs, the
// compaction, the same cluster and member ID, cluster version 3.1.0, and takes a
// write. Stopped, a rerun with TARGET_VERSION=3.1.12 --exec=false exits 0 without
// a step.
func TestOldK8sMigrateUp(t *testing.T) {
	k8sMigrate(t, k8sCase{members: 1, start: "3.0.17", startRan: "3.0.17", end: "3.1.12", endRan: "3.1.20"})
}

// TestOldK8sMigrateUpClientURLList is Kubernetes'
// "v3-v3-up-with-additional-client-url": TestOldK8sMigrateUp with every migrate run
// given LISTEN_CLIENT_URLS=http://127.0.0.1:<p>,http://127.0.0.2:<p> (Kubernetes
// lists 127.0.0.1 and a node address; ours are both loopback). The list is
// accepted: the step's etcd uses the first loopback URL and the log says which it
// used and which it did not, and during the migration something (the step's
// etcd) accepts connections on the first URL and nothing on the second; the rest is as TestOldK8sMigrateUp.
func TestOldK8sMigrateUpClientURLList(t *testing.T) {
	k8sMigrate(t, k8sCase{members: 1, start: "3.0.17", startRan: "3.0.17", end: "3.1.12", endRan: "3.1.20", listenClientURLs: true})
}

// TestOldK8sMigrateHAUp is Kubernetes' "ha-v3-v3-up": three members with https
// peers, started together through migrate at 3.0.17, then migrated in series to
// 3.1.12, each while the two others serve (a rolling upgrade: the migrated member
// hands over to 3.1.20 with 3.0.17 members around it). Each member's migrate
// records 3.1.20/etcd3 and becomes etcd 3.1.20; a write goes through it. The
// first member restarts once more while the others still run 3.0.17 and serves
// 3.1.20 again. At the end all three serve 3.1.20 at cluster version 3.1.0, each
// member's own copy holds every key as before plus the writes made during the
// upgrade, the cluster ID and every member ID are unchanged, and stopped, each
// member's rerun exits 0 without a step.
func TestOldK8sMigrateHAUp(t *testing.T) {
	k8sMigrate(t, k8sCase{members: 3, start: "3.0.17", startRan: "3.0.17", end: "3.1.12", endRan: "3.1.20"})
}

// TestOldK8sMigrateDown is Kubernetes' "v3-v3-down": one member, https peer,
// 3.1.12/etcd3 -> 3.0.17/etcd3. It starts through migrate at TARGET_VERSION=3.1.12
// (etcd 3.1.20 runs, version.txt 3.1.20/etcd3); migrate TARGET_VERSION=3.0.17
// rolls back by a snapshot of 3.1.20 restored by etcdctl 3.0.17, exit 0; then
// etcd 3.0.17 serves every key with its value, create/mod revision and version,
// the leases with their keys, the compaction, at cluster version 3.0.0 under the
// same member name and peer URL; the cluster and member ID are new, as
// docs/rollbacks.md documents for a restore. (Kubernetes runs its downgrade on one
// member only: "ha downgrades not yet supported"; ours refuses restore-based
// rollbacks on several members, see TestHARefusals.)
func TestOldK8sMigrateDown(t *testing.T) {
	k8sMigrate(t, k8sCase{members: 1, start: "3.1.12", startRan: "3.1.20", end: "3.0.17", endRan: "3.0.17"})
}

func k8sMigrate(t *testing.T, tc k8sCase) {
	binDir := oldBinDir(t, "3.0.17")
	oldBinDir(t, "3.1.20")
	began := time.Now()
	c := cluster.New(t, binDir, tc.members)
	bundle := "--bundled-versions=" + seedBundle
	var env []string
	var listURL, unusedURL string
	if tc.listenClientURLs {
		p := etcdtest.FreePort(t)
		listURL, unusedURL = fmt.Sprintf("http://127.0.0.1:%d", p), fmt.Sprintf("http://127.0.0.2:%d", p)
		env = []string{"LISTEN_CLIENT_URLS=" + listURL + "," + unusedURL}
	}
	up := tc.start == "3.0.17"

	// Start: migrate on each empty data dir with the start version execs it.
	serving := make([]*cluster.MigrateRun, len(c.Members))
	for i, m := range c.Members {
		serving[i] = c.RunMigrate(t, m, tc.start, env, bundle)
	}
	for i, m := range c.Members {
		if _, err := m.WaitServer(tc.startRan, time.Minute); err != nil {
			t.Fatalf("%v\n%s", err, serving[i].Summary())
		}
	}
	if err := c.WaitLeader(time.Minute); err != nil {
		t.Fatalf("%v\n%s", err, c.Logs())
	}
	for i, m := range c.Members {
		if got := readVersionTxt(t, m.DataDir); got != tc.startRan+"/etcd3\n" {
			t.Fatalf("%s: version.txt %q after the start with TARGET_VERSION=%s, want %s/etcd3", m.Name, got, tc.start, tc.startRan)
		}
		if tc.start != tc.startRan && !strings.Contains(serving[i].Stderr.String(), "requested="+tc.start+" runs="+tc.startRan) {
			t.Fatalf("%s: no log of %s running for TARGET_VERSION=%s:\n%s", m.Name, tc.startRan, tc.start, serving[i].Summary())
		}
	}

	// The writes: Kubernetes' key of each member through its own client URL,
	// read back there; then a small Kubernetes-like keyspace through all.
	for _, m := range c.Members {
		k8sPutGet(t, m, "/registry/"+m.Name, "value-"+m.Name)
	}
	if err := c.Populate(k8sKeys); err != nil {
		t.Fatalf("populate: %v\n%s", err, c.Logs())
	}
	want, id, compacted := k8sBaseline(t, c, tc.startRan)
	t.Logf("%d member(s) serving %s: %d keys at revision %d, %d leases with keys, compacted at %d, cluster %x",
		tc.members, tc.startRan, len(want.Keys), want.Revision, len(want.Leases), compacted, id.ClusterID)

	// Migrate in series: stop a member and start migrate with the end version in
	// its place, which migrates and execs etcd (Kubernetes: migrate, then start
	// etcd at the end version); then write through it. The others serve the start
	// version meanwhile.
	after := map[string]string{}
	var migrateTook []string
	for i, m := range c.Members {
		serving[i].Stop()
		var watch *k8sURLWatch
		if tc.listenClientURLs {
			watch = k8sWatchURLs(listURL, unusedURL)
		}
		start := time.Now()
		r := c.RunMigrate(t, m, tc.end, env, bundle)
		serving[i] = r
		if _, err := m.WaitServer(tc.endRan, time.Minute); err != nil {
			t.Fatalf("%v\n%s\n%s", err, r.Summary(), c.Logs())
		}
		took := time.Since(start)
		if watch != nil {
			seen := watch.stop()
			if !seen[listURL] || seen[unusedURL] {
				t.Fatalf("%s: during the migration %s accepted connections: %v, %s: %v; want the step's listener on the first only\n%s", m.Name, listURL, seen[listURL], unusedURL, seen[unusedURL], r.Stderr.String())
			}
			t.Logf("%s: during the migration the step's etcd listened on %s, nothing on %s", m.Name, listURL, unusedURL)
		}
		// migrate became the end release's etcd: same process, still running.
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", r.Cmd.Process.Pid)); err != nil || filepath.Base(exe) != "etcd-"+tc.endRan {
			t.Fatalf("%s: migrate's process runs %q (%v), want etcd-%s\n%s", m.Name, exe, err, tc.endRan, r.Summary())
		}
		log := r.Stderr.String()
		k8sCheckMigrateLog(t, m, tc, log, up)
		if tc.listenClientURLs {
			l := logLine(log, "LISTEN_CLIENT_URLS lists several URLs")
			if !strings.Contains(l, "used="+listURL) || !strings.Contains(l, unusedURL) {
				t.Fatalf("%s: want the log to name %s used and %s not used, got %q\n%s", m.Name, listURL, unusedURL, l, log)
			}
		}
		if got := readVersionTxt(t, m.DataDir); got != tc.endRan+"/etcd3\n" {
			t.Fatalf("%s: version.txt %q after migrate TARGET_VERSION=%s, want %s/etcd3", m.Name, got, tc.end, tc.endRan)
		}
		if fi, err := os.Stat(filepath.Join(m.DataDir, "version.txt")); err != nil || fi.Mode() != 0o644 {
			t.Fatalf("%s: version.txt mode %v (%v), want -rw-r--r--", m.Name, fi.Mode(), err)
		}
		migrateTook = append(migrateTook, fmt.Sprintf("%s %v", m.Name, took.Round(time.Millisecond)))
		if i == 0 && tc.members > 1 {
			// Not in Kubernetes' test: the first upgraded member restarts (its
			// pod restarted by the kubelet) while the others still run the start
			// version. Its data is still at the start minor (the cluster version
			// moves once every member runs the end one): it hands over again,
			// waiting for nobody (etcd 3.0 cannot list leases: the barrier probes
			// them), and serves the end version again.
			r.Stop()
			restart := time.Now()
			r = c.RunMigrate(t, m, tc.end, env, bundle)
			serving[i] = r
			if _, err := m.WaitServer(tc.endRan, time.Minute); err != nil {
				t.Fatalf("restart of %s mid-upgrade: %v\n%s\n%s", m.Name, err, r.Summary(), c.Logs())
			}
			if got := readVersionTxt(t, m.DataDir); got != tc.endRan+"/etcd3\n" {
				t.Fatalf("%s: version.txt %q after its restart", m.Name, got)
			}
			t.Logf("%s restarted mid-upgrade: serving %s again in %v; %s", m.Name, tc.endRan, time.Since(restart).Round(time.Millisecond), logLine(r.Stderr.String(), "msg=plan"))
		}
		k, v := "/k8s-after/"+m.Name, fmt.Sprintf(`{"written-through":%q,"at":%q}`, m.Name, tc.endRan)
		k8sPutGet(t, m, k, v)
		after[k] = v
	}
	t.Logf("migrated %s -> %s in series, each from the stop to serving: %s", tc.start, tc.end, strings.Join(migrateTook, ", "))

	if up {
		if err := c.WaitClusterVersion(minor(tc.endRan)+".0", time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	k8sCheckServed(t, c, tc, up, want, id, compacted, after)

	// Every member stopped, migrate with the same target is a no-op: exit 0, no
	// step, version.txt as it was.
	c.StopAll()
	for _, m := range c.Members {
		r := c.RunMigrate(t, m, tc.end, env, bundle, "--exec=false")
		code, ok := r.Wait(time.Minute)
		if !ok || code != 0 || !strings.Contains(r.Stderr.String(), `msg="migration done" version_txt=`+tc.endRan+"/etcd3 steps=0") {
			t.Fatalf("%s: rerun with TARGET_VERSION=%s: exit %d (done %v), want 0 and no step\n%s", m.Name, tc.end, code, ok, r.Summary())
		}
		if got := readVersionTxt(t, m.DataDir); got != tc.endRan+"/etcd3\n" {
			t.Fatalf("%s: version.txt %q after the rerun", m.Name, got)
		}
	}
	t.Logf("%s -> %s on %d member(s): done in %v", tc.start, tc.end, tc.members, time.Since(began).Round(time.Millisecond))
}

// k8sURLWatch watches client URLs while a migration runs: the step's private
// listener is TLS with client-certificate auth, so it only tells whether
// something accepts a connection there.
type k8sURLWatch struct {
	done chan struct{}
	out  chan map[string]bool
}

// k8sWatchURLs tries a TCP connection to each URL's host:port every 5 ms until
// stop, which returns which of them ever accepted one.
func k8sWatchURLs(urls ...string) *k8sURLWatch {
	w := &k8sURLWatch{done: make(chan struct{}), out: make(chan map[string]bool, 1)}
	go func() {
		seen := map[string]bool{}
		for {
			for _, u := range urls {
				if conn, err := net.DialTimeout("tcp", strings.TrimPrefix(u, "http://"), 100*time.Millisecond); err == nil {
					conn.Close()
					seen[u] = true
				}
			}
			select {
			case <-w.done:
				w.out <- seen
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *k8sURLWatch) stop() map[string]bool {
	close(w.done)
	return <-w.out
}

// k8sPutGet puts k=v through m's own client URL and reads it back there.
func k8sPutGet(t *testing.T, m *cluster.Member, k, v string) {
	t.Helper()
	cl, err := m.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := cl.Put(ctx, k, v); err != nil {
		t.Fatalf("%s: put %s: %v", m.Name, k, err)
	}
	g, err := cl.Get(ctx, k)
	if err != nil || len(g.Kvs) != 1 || string(g.Kvs[0].Value) != v {
		t.Fatalf("%s: get %s after the put: %v %v", m.Name, k, g, err)
	}
}

// k8sBaseline waits until every member applied the same revision and returns
// member-0's keyspace (through the old releases' API: dumpOld), after checking
// every member holds the same; the identity member-0 reports; and the compacted
// revision (a read below it fails, above it works).
func k8sBaseline(t *testing.T, c *cluster.Cluster, ver string) (etcdtest.Dump, cluster.Identity, int64) {
	t.Helper()
	if err := c.WaitSettled(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	want := k8sDump(t, c.Members[0], ver)
	for _, m := range c.Members[1:] {
		if diffs := etcdtest.Compare(want, k8sDump(t, m, ver), 10); len(diffs) > 0 {
			t.Fatalf("%s differs from %s before the migration: %v", m.Name, c.Members[0].Name, diffs)
		}
	}
	if len(want.Keys) < k8sKeys*3/4 || len(want.Leases) == 0 {
		t.Fatalf("baseline of %d keys and %d leases: Populate wrote less than it should", len(want.Keys), len(want.Leases))
	}
	compacted := k8sCompactRevision(t, c.Members[0], want)
	return want, c.Identity(t, c.Members[0]), compacted
}

// k8sDump is m's keyspace through m's own client URL.
func k8sDump(t *testing.T, m *cluster.Member, ver string) etcdtest.Dump {
	t.Helper()
	cl, err := m.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	return dumpOld(t, ver, cl)
}

// k8sCompactRevision finds the revision Populate compacted at: the lowest
// revision m still reads (every read below it fails with ErrCompacted).
func k8sCompactRevision(t *testing.T, m *cluster.Member, d etcdtest.Dump) int64 {
	t.Helper()
	cl, err := m.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for rev := int64(1); rev <= d.Revision; rev++ {
		_, err := cl.Get(ctx, "/registry/", clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithRev(rev))
		if err == nil {
			if rev == 1 {
				t.Fatalf("%s: nothing compacted", m.Name)
			}
			return rev
		}
		if !errors.Is(err, rpctypes.ErrCompacted) {
			t.Fatalf("%s: read at revision %d: %v", m.Name, rev, err)
		}
	}
	t.Fatalf("%s: every revision up to %d compacted", m.Name, d.Revision)
	return 0
}

// k8sCheckMigrateLog checks that the run took the expected step with the
// expected etcd and recorded what ran.
func k8sCheckMigrateLog(t *testing.T, m *cluster.Member, tc k8sCase, log string, up bool) {
	t.Helper()
	wants := []string{
		"requested=" + tc.end + " runs=" + tc.endRan,
		`msg="migration done" version_txt=` + tc.endRan + "/etcd3 steps=1",
	}
	if tc.end == tc.endRan {
		wants = wants[1:]
	}
	if up {
		// The last minor hop up hands over: the data's own minor runs for a
		// snapshot, version.txt records the target.
		wants = append(wants, "from="+tc.startRan+"/etcd3 version_txt="+tc.endRan+"/etcd3")
	} else {
		wants = append(wants, "kind=rollback-minor from="+tc.startRan+"/etcd3 version_txt="+tc.endRan+"/etcd3 etcd="+tc.endRan)
	}
	for _, w := range wants {
		if !strings.Contains(log, w) {
			t.Fatalf("%s: the migrate log lacks %q:\n%s", m.Name, w, log)
		}
	}
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, `msg="step done"`) {
			t.Logf("%s: %s", m.Name, l)
		}
	}
}

// k8sCheckServed checks every member as it serves now: its own copy of the
// keyspace is want plus the writes of after (each one revision more); the
// compaction is where it was; /version names the end release and its minor as the
// cluster version; the members are the same names and peer URLs, with the same
// IDs after an upgrade and new ones after a restore-based rollback; version.txt
// names the end release.
func k8sCheckServed(t *testing.T, c *cluster.Cluster, tc k8sCase, up bool, want etcdtest.Dump, id cluster.Identity, compacted int64, after map[string]string) {
	t.Helper()
	if err := c.WaitSettled(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	ref := k8sDump(t, c.Members[0], tc.endRan)
	exp := etcdtest.Dump{Revision: want.Revision + int64(len(after)), Keys: map[string]etcdtest.KV{}, Leases: want.Leases}
	for k, kv := range want.Keys {
		exp.Keys[k] = kv
	}
	for k, v := range after {
		g, ok := ref.Keys[k]
		if !ok || g.Value != v || g.CreateRevision != g.ModRevision || g.CreateRevision <= want.Revision || g.Version != 1 || g.Lease != 0 {
			t.Fatalf("key %s written after the migration: %+v (present %v), want value %s, version 1, a revision past %d", k, g, ok, v, want.Revision)
		}
		exp.Keys[k] = g
	}
	var ids []string
	newID := cluster.Identity{}
	for _, m := range c.Members {
		got := k8sDump(t, m, tc.endRan)
		if diffs := etcdtest.Compare(exp, got, 10); len(diffs) > 0 {
			t.Fatalf("%s serving %s: %d+ differences from the data before: %v", m.Name, tc.endRan, len(diffs), diffs)
		}
		if minor(tc.endRan) != "3.0" {
			for lid, ttl := range want.LeaseTTL {
				if got.LeaseTTL[lid] != ttl {
					t.Fatalf("%s: lease %x granted TTL %d, want %d", m.Name, lid, got.LeaseTTL[lid], ttl)
				}
			}
		}
		if got := k8sCompactRevision(t, m, got); got != compacted {
			t.Fatalf("%s: compacted at %d, want %d", m.Name, got, compacted)
		}
		v, err := m.Versions(context.Background())
		if err != nil || v.Server != tc.endRan || v.Cluster != minor(tc.endRan)+".0" {
			t.Fatalf("%s /version: %+v (%v), want server %s cluster %s.0", m.Name, v, err, tc.endRan, minor(tc.endRan))
		}
		gid := c.Identity(t, m)
		if fmt.Sprint(gid.PeerURLs) != fmt.Sprint(id.PeerURLs) || len(gid.Members) != len(id.Members) {
			t.Fatalf("%s: members %v, want %v", m.Name, gid.PeerURLs, id.PeerURLs)
		}
		switch {
		case up: // an upgrade keeps the identities
			if gid.ClusterID != id.ClusterID || fmt.Sprint(gid.Members) != fmt.Sprint(id.Members) || gid.MemberID != id.Members[m.Name] {
				t.Fatalf("%s: cluster %x member %x members %v, want cluster %x member %x members %v", m.Name, gid.ClusterID, gid.MemberID, gid.Members, id.ClusterID, id.Members[m.Name], id.Members)
			}
		default: // a snapshot restore makes a new cluster (docs/rollbacks.md)
			if gid.ClusterID == id.ClusterID || gid.MemberID == id.Members[m.Name] {
				t.Fatalf("%s: cluster %x member %x after the restore, the same as before: docs/rollbacks.md says a restore gives new ones", m.Name, gid.ClusterID, gid.MemberID)
			}
			if newID.ClusterID != 0 && gid.ClusterID != newID.ClusterID {
				t.Fatalf("%s: cluster %x, %s says %x", m.Name, gid.ClusterID, c.Members[0].Name, newID.ClusterID)
			}
			newID = gid
		}
		if got := readVersionTxt(t, m.DataDir); got != tc.endRan+"/etcd3\n" {
			t.Fatalf("%s: version.txt %q, want %s/etcd3", m.Name, got, tc.endRan)
		}
		ids = append(ids, fmt.Sprintf("%s=%x", m.Name, gid.MemberID))
	}
	t.Logf("every member serves %s at cluster version %s.0: %d keys at revision %d (%d written after the migration), %d leases with keys, compacted at %d; cluster %x, members %s",
		tc.endRan, minor(tc.endRan), len(exp.Keys), exp.Revision, len(after), len(exp.Leases), compacted, c.Identity(t, c.Members[0]).ClusterID, strings.Join(ids, " "))
}
