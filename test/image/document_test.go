package image

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/internal/fixture"
	"github.com/etcd-migrate/etcd-migrate/pkg/etcdproc"
	"github.com/etcd-migrate/etcd-migrate/pkg/rollback"
)

// The Kubernetes upgrade document's two procedures, with the environment it names.
var (
	documentUpgrade  = map[string]string{"TARGET_STORAGE": "etcd3", "TARGET_VERSION": "3.0.17", "ETCD_IMAGE": "3.0.17", "STORAGE_MEDIA_TYPE": "application/json"}
	documentRollback = map[string]string{"TARGET_STORAGE": "etcd2", "TARGET_VERSION": "2.2.1", "ETCD_IMAGE": "3.0.17", "STORAGE_MEDIA_TYPE": "application/json"}
)

// testDocument runs the document's two procedures in the full image, each with the
// image's own entrypoint on the same data dir (mounted as a static pod mounts it):
// data the real etcd 2.2.5 wrote (JSON values under /registry, TTL keys, a TTL dir,
// snapshots and a WAL tail), no version.txt -> the upgrade env -> the exec'd etcd
// 3.0.17 serves every live v2 key through the v3 API (value, create/mod revision =
// createdIndex/modifiedIndex, a lease of the remaining TTL for TTL keys) -> the
// rollback env (TARGET_VERSION=2.2.1 runs the bundled 2.2.5) -> the exec'd etcd 2.2.5
// serves every one of those keys through the v2 API with createdIndex/modifiedIndex =
// the revisions 3.0.17 served and the leased keys' TTLs kept.
func testDocument(t *testing.T, tl *tool, binDir string) {
	varEtcd := filepath.Join(t.TempDir(), "var-etcd")
	dataDir := filepath.Join(varEtcd, "data")
	v2 := documentData(t, binDir, dataDir)
	if _, err := os.Stat(filepath.Join(dataDir, "version.txt")); !os.IsNotExist(err) {
		t.Fatalf("etcd 2.2.5's data dir has a version.txt (%v): the document's case has none", err)
	}
	if out, err := exec.Command("chmod", "-R", "a+rwX", varEtcd).CombinedOutput(); err != nil {
		t.Fatalf("chmod: %v: %s", err, out)
	}
	mounts := map[string]string{varEtcd: "/var/etcd"}

	// The upgrade.
	up := serve(t, tl, "document-upgrade", "3.0.17", mounts, "", documentUpgrade)
	up.checkExec(t, "3.0.17", 0)
	if v, err := etcdproc.GetVersions(context.Background(), up.clientURL); err != nil || v.Cluster != "3.0.0" {
		t.Errorf("after the upgrade: /version %+v, %v; want cluster 3.0.0", v, err)
	}
	v3 := dumpV3(t, up.client)
	upLog := up.c.log.String()
	up.c.stop(t)
	for _, l := range []string{"taken as written by the oldest bundled etcd 2.x",
		"kind=v2-to-v3 from=2.2.5/etcd2 version_txt=3.0.17/etcd3 etcd=3.0.17",
		`msg="migration done" version_txt=3.0.17/etcd3 steps=1`} {
		if !strings.Contains(upLog, l) {
			t.Errorf("upgrade log lacks %q:\n%s", l, upLog)
		}
	}
	if v := readFile(t, filepath.Join(dataDir, "version.txt")); v != "3.0.17/etcd3\n" {
		t.Errorf("version.txt after the upgrade = %q", v)
	}
	// 3.0 has no lease TimeToLive: the granted TTLs are read from the backend it left.
	leaseTTLs(t, dataDir, &v3)
	keys, leased := compareDocumentV2V3(t, v2, v3, etcdtest.LogTime(t, upLog, `msg="v2 store converted"`))
	if keys < 150 || leased < 20 {
		t.Errorf("upgrade: only %d keys (%d leased) served", keys, leased)
	}
	if t.Failed() {
		return
	}
	t.Logf("document upgrade (%s) in the full image: %v to /version, %v to a read; etcd 3.0.17 serves %d keys (%d leased), values and revisions as 2.2.5 wrote them",
		envLine(documentUpgrade), up.versionAfter.Round(time.Millisecond), up.readyAfter.Round(time.Millisecond), keys, leased)

	// The rollback, on the same data dir.
	c, url := startMember(t, tl, "document-rollback", mounts, "", documentRollback)
	back := waitServedV2(t, c, url, "2.2.5")
	back.checkExec(t, "2.2.5", 0)
	if v, err := etcdproc.GetVersions(context.Background(), url); err != nil || v.Cluster != "2.2.0" {
		t.Errorf("after the rollback: /version %+v, %v; want cluster 2.2.0", v, err)
	}
	got := etcdtest.DumpV2(t, url)
	backLog := c.log.String()
	c.stop(t)
	for _, l := range []string{"requested=2.2.1 runs=2.2.5",
		"kind=rollback-to-etcd2 from=3.0.17/etcd3 version_txt=2.2.5/etcd2 etcd=2.2.5 cluster_version=2.2.0",
		`msg="migration done" version_txt=2.2.5/etcd2 steps=1`} {
		if !strings.Contains(backLog, l) {
			t.Errorf("rollback log lacks %q:\n%s", l, backLog)
		}
	}
	if v := readFile(t, filepath.Join(dataDir, "version.txt")); v != "2.2.5/etcd2\n" {
		t.Errorf("version.txt after the rollback = %q", v)
	}
	n, ttls := compareDocumentV3V2(t, v3, got, etcdtest.LogTime(t, backLog, `msg="v3 keyspace converted to a v2 store"`))
	if t.Failed() {
		return
	}
	t.Logf("document rollback (%s) in the full image: %v to /version, %v to a v2 read; etcd 2.2.5 serves %d keys (%d with their TTL), createdIndex/modifiedIndex = the revisions etcd 3.0.17 served",
		envLine(documentRollback), back.versionAfter.Round(time.Millisecond), back.readyAfter.Round(time.Millisecond), n, ttls)
}

// documentData has the real etcd 2.2.5 write a Kubernetes-shaped v2 keyspace into
// dataDir through the v2 API, every value JSON as the document's rollback needs:
// pods and services in namespaces (some updated, some deleted), events with TTLs, a
// dir with a TTL holding keys, an empty dir, snapshots (snapshot count 20) and a WAL
// tail after them. It returns 2.2.5's own v2 dump, each key in the TTL dir given the
// dir's expiry (it goes with the dir, and gets its lease in v3).
func documentData(t *testing.T, binDir, dataDir string) map[string]etcdtest.V2Node {
	t.Helper()
	s, err := fixture.StartOld(binDir, "2.2.5", dataDir, fixture.PortPair(t), 20)
	if err != nil {
		t.Fatal(err)
	}
	v2 := fixture.DocumentData(t, s.URL)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	return v2
}

// dumpV3 reads every key through c: etcd 3.0 lists no leases and has no TimeToLive,
// so LeaseTTL stays empty (leaseTTLs fills it from the backend).
func dumpV3(t *testing.T, c *clientv3.Client) etcdtest.Dump {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, "\x00", clientv3.WithFromKey())
	if err != nil {
		t.Fatalf("v3 dump: %v", err)
	}
	d := etcdtest.Dump{Revision: resp.Header.Revision, Keys: map[string]etcdtest.KV{}, Leases: map[int64][]string{}, LeaseTTL: map[int64]int64{}}
	for _, kv := range resp.Kvs {
		d.Keys[string(kv.Key)] = etcdtest.KV{Value: string(kv.Value), CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision, Version: kv.Version, Lease: kv.Lease}
		if kv.Lease != 0 {
			d.Leases[kv.Lease] = append(d.Leases[kv.Lease], string(kv.Key))
		}
	}
	return d
}

// leaseTTLs sets d's granted lease TTLs from the backend of the stopped etcd's data
// dir, and checks the backend holds the keys d was served.
func leaseTTLs(t *testing.T, dataDir string, d *etcdtest.Dump) {
	t.Helper()
	keys, err := rollback.ReadKeyspace(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != len(d.Keys) {
		t.Errorf("the backend holds %d keys, etcd served %d", len(keys), len(d.Keys))
	}
	for _, k := range keys {
		if k.KV.Lease != 0 {
			d.LeaseTTL[k.KV.Lease] = k.TTL
		}
	}
}

// compareDocumentV2V3: every live v2 key is a v3 key with the same value,
// create_revision = createdIndex, mod_revision = modifiedIndex; a TTL key has a lease
// granted its remaining TTL at the conversion (±2 s), no other key a lease; an
// expired key is gone; nothing else exists. It returns the keys and leased keys.
func compareDocumentV2V3(t *testing.T, v2 map[string]etcdtest.V2Node, v3 etcdtest.Dump, convertedAt time.Time) (keys, leased int) {
	t.Helper()
	var diffs []string
	for k, n := range v2 {
		got, ok := v3.Keys[k]
		switch {
		case n.Dir:
			if ok {
				diffs = append(diffs, fmt.Sprintf("v2 directory %q became a v3 key", k))
			}
			continue
		case !n.Expiration.IsZero() && n.Expiration.Before(convertedAt.Add(2*time.Second)):
			if ok && n.Expiration.Before(convertedAt.Add(-3*time.Second)) {
				diffs = append(diffs, fmt.Sprintf("expired v2 key %q was resurrected", k))
			}
			continue
		case !ok:
			diffs = append(diffs, fmt.Sprintf("v2 key %q lost", k))
			continue
		}
		keys++
		if got.Value != n.Value || got.CreateRevision != int64(n.CreatedIndex) || got.ModRevision != int64(n.ModifiedIndex) {
			diffs = append(diffs, fmt.Sprintf("key %q: v2 created=%d modified=%d, v3 create=%d mod=%d, values equal %v",
				k, n.CreatedIndex, n.ModifiedIndex, got.CreateRevision, got.ModRevision, got.Value == n.Value))
		}
		switch {
		case !n.Expiration.IsZero():
			leased++
			want := int64((n.Expiration.Sub(convertedAt) + time.Second - 1) / time.Second)
			if granted := v3.LeaseTTL[got.Lease]; got.Lease == 0 || granted < want-2 || granted > want+2 {
				diffs = append(diffs, fmt.Sprintf("TTL key %q: lease %x granted %ds, want about %ds", k, got.Lease, granted, want))
			}
		case got.Lease != 0:
			diffs = append(diffs, fmt.Sprintf("key %q without TTL got lease %x", k, got.Lease))
		}
	}
	for k := range v3.Keys {
		if n, ok := v2[k]; !ok || n.Dir {
			diffs = append(diffs, fmt.Sprintf("v3 key %q has no v2 key", k))
		}
	}
	reportDiffs(t, "the keyspace etcd 3.0.17 serves differs from the one etcd 2.2.5 wrote", diffs)
	return keys, leased
}

// compareDocumentV3V2: every v3 key is a v2 key with the same value, createdIndex =
// create_revision, modifiedIndex = mod_revision; a leased key expires its lease's TTL
// after the conversion (±3 s), no other key has a TTL; no other key exists. It
// returns the keys and the keys with a TTL.
func compareDocumentV3V2(t *testing.T, v3 etcdtest.Dump, v2 map[string]etcdtest.V2Node, convertedAt time.Time) (keys, ttls int) {
	t.Helper()
	diffs, _, keys, ttls := etcdtest.DiffV3V2(v3, v2, convertedAt, convertedAt, 3*time.Second, 3*time.Second)
	if keys < 150 {
		diffs = append(diffs, fmt.Sprintf("only %d keys compared", keys))
	}
	reportDiffs(t, "the v2 keyspace etcd 2.2.5 serves differs from the v3 one etcd 3.0.17 served", diffs)
	return keys, ttls
}

func reportDiffs(t *testing.T, what string, diffs []string) {
	t.Helper()
	if len(diffs) == 0 {
		return
	}
	sort.Strings(diffs)
	if len(diffs) > 20 {
		diffs = append(diffs[:20], fmt.Sprintf("… and %d more", len(diffs)-20))
	}
	t.Errorf("%s:\n%s", what, strings.Join(diffs, "\n"))
}

// waitServedV2 is waitServed for an etcd without the v3 API (2.x): until /version
// names version, then until a quorum read of /v2/keys/ answers 200.
func waitServedV2(t *testing.T, c *container, url, version string) *served {
	t.Helper()
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
			t.Fatalf("container %s exited (%d) instead of serving etcd %s:\n%s", c.name, code, version, c.log)
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s: no etcd %s on %s (last %+v, %v):\n%s", c.name, version, url, v, err, c.log)
		}
		time.Sleep(5 * time.Millisecond)
	}
	hc := &http.Client{Timeout: time.Second}
	defer hc.CloseIdleConnections()
	for {
		resp, err := hc.Get(url + "/v2/keys/?quorum=true")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				s.readyAfter = time.Since(c.started)
				return s
			}
			err = fmt.Errorf("GET /v2/keys/: %s", resp.Status)
		}
		if c.exited() || time.Now().After(deadline) {
			t.Fatalf("container %s: etcd %s does not answer v2 reads: %v\n%s", c.name, version, err, c.log)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func envLine(env map[string]string) string {
	var parts []string
	for _, k := range sortedKeys(env) {
		parts = append(parts, k+"="+env[k])
	}
	return strings.Join(parts, " ")
}
