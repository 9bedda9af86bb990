//go:build oldetcd

package e2e

// Data written by the real etcd releases before the bundle (2.2.5 ... 3.3.27, built
// by hack/build-etcd.sh from the module proxy) and what migrate does with it. Behind
// the oldetcd build tag until those binaries are part of `make test`:
//
//	ETCD_MIGRATE_BIN_DIR=$PWD/_output/bin go test -tags oldetcd -count=1 ./test/e2e -run 'TestOld' -v
//
// with etcd-<v> and etcdctl-<v> of the old releases next to migrate and the bundle.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/internal/fixture"
	"github.com/etcd-migrate/etcd-migrate/pkg/datadir"
	"github.com/etcd-migrate/etcd-migrate/pkg/etcdproc"
	"github.com/etcd-migrate/etcd-migrate/pkg/v3backend"
)

// seedBundle is every release the image can bundle (BUNDLED_VERSIONS with the
// old releases).
const seedBundle = "2.2.5,2.3.8,3.0.17,3.1.20,3.2.32,3.3.27,3.4.13,3.4.25,3.5.35,3.6.16,3.7.3"

var (
	oldEtcd2Versions = []string{"2.2.5", "2.3.8", "3.0.17", "3.1.20", "3.2.32", "3.3.27"}
	oldEtcd3Versions = []string{"3.0.17", "3.1.20", "3.2.32", "3.3.27"}
)

// oldBinDir is BinDir with etcd-<v> of the old release v in it too.
func oldBinDir(t *testing.T, v string) string {
	t.Helper()
	dir := etcdtest.BinDir(t)
	if _, err := os.Stat(filepath.Join(dir, "etcd-"+v)); err != nil {
		t.Fatalf("etcd %s missing: %v (build it with hack/build-etcd.sh)", v, err)
	}
	return dir
}

// TestOldEtcd2Converts: the etcd2 data set (nested dirs, updates, replacing sets,
// deletes of keys and dirs, TTL keys and dirs, snapshots and a WAL tail) written by
// each real old release through the v2 API converts in-process at 3.4.13 and walks
// on to 3.7.3 with every key, value, createdIndex/modifiedIndex (= create/mod
// revision) and remaining TTL. The oracle is the old release's own v2 dump before
// the stop and the served 3.7.3's v3 dump after the walk.
func TestOldEtcd2Converts(t *testing.T) {
	for _, v := range oldEtcd2Versions {
		t.Run(v, func(t *testing.T) { oldEtcd2Converts(t, v, fixture.GenerateEtcd2Old) })
	}
}

// TestOldEtcd2KilledConverts is TestOldEtcd2Converts on the data dir each old
// release leaves when it is killed (SIGKILL) right after its last acknowledged
// write: every acknowledged write must be converted.
func TestOldEtcd2KilledConverts(t *testing.T) {
	for _, v := range oldEtcd2Versions {
		t.Run(v, func(t *testing.T) { oldEtcd2Converts(t, v, fixture.GenerateEtcd2OldKilled) })
	}
}

func oldEtcd2Converts(t *testing.T, v string, generate func(binDir, ver string, opts fixture.Etcd2Options, dataDir string, port int, inspect func(string) error) error) {
	binDir := oldBinDir(t, v)
	dataDir := filepath.Join(t.TempDir(), "data")
	var v2 map[string]etcdtest.V2Node
	start := time.Now()
	err := generate(binDir, v, fixture.Etcd2Options{Keys: 200, SnapshotCount: 50, Writers: 4}, dataDir, fixture.PortPair(t),
		func(url string) error { v2 = etcdtest.DumpV2(t, url); return nil })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("etcd %s wrote %d v2 nodes in %v; files: %s", v, len(v2), time.Since(start).Round(time.Millisecond), memberFiles(t, dataDir))
	checkOldV2Extras(t, v, v2)
	fixture.InheritDirExpiry(v2)

	// Without version.txt the data does not say which release wrote it:
	// refused, and the data dir is not touched.
	bare := etcdtest.CopyDir(t, dataDir)
	if err := os.Remove(filepath.Join(bare, "version.txt")); err != nil {
		t.Fatal(err)
	}
	sum := etcdtest.Checksum(t, bare)
	r := runMigrate(t, binDir, bare, nil, "--target-version=3.7.3", "--exec=false")
	want := "has no version.txt: detected etcd2 data (WAL and v2 snapshots, no v3 backend)"
	if !strings.HasPrefix(v, "2.") {
		// 3.x creates the v3 backend even when only v2 is used.
		want = "has no version.txt: detected etcd3 data (cluster version " + minor(v) + ".0) without a single v3 key, which may be etcd2 data served by etcd 3.x"
	}
	if r.code != 2 || !strings.Contains(errorLine(t, r), want) {
		t.Fatalf("no version.txt: exit %d, want 2 with %q:\n%s", r.code, want, r.stderr)
	}
	if etcdtest.Checksum(t, bare) != sum {
		t.Fatal("the refused run changed the data dir")
	}
	t.Logf("no version.txt: exit %d: %s", r.code, errorLine(t, r))
	if strings.HasPrefix(v, "2.") {
		// With an etcd 2.x bundled, v2-only data without version.txt is taken
		// as written by the oldest of them (the seed's rule), and converts.
		r = runMigrate(t, binDir, bare, nil, "--target-version=3.7.3", "--exec=false", "--bundled-versions="+seedBundle)
		if r.code != 0 || !strings.Contains(r.stderr, "taken as written by the oldest bundled etcd 2.x") || !strings.Contains(r.stderr, "kind=v2-to-v3 from=2.2.5/etcd2 version_txt=3.0.17/etcd3") {
			t.Fatalf("no version.txt, every release bundled: exit %d, want 0 converting from 2.2.5/etcd2 at 3.0.17:\n%s", r.code, r.stderr)
		}
		s := etcdtest.Serve(t, binDir, "3.7.3", bare)
		keys, _, _ := compareV2V3(t, v2, s.DumpAll(t), conversionTime(t, r.stderr, time.Now()))
		s.Stop()
		t.Logf("no version.txt, every release bundled: taken as 2.2.5/etcd2, %d keys identical at 3.7.3", keys)
	}

	st := runMigrate(t, binDir, dataDir, nil, "status")
	if st.code != 0 || !strings.Contains(st.stdout, "version.txt: "+v+"/etcd2") {
		t.Fatalf("status: exit %d\n%s%s", st.code, st.stdout, st.stderr)
	}
	t.Logf("status:\n%s", st.stdout)

	// The default bundle converts at 3.4.13; with every release bundled the
	// conversion is at the data's own minor, 3.0 for 2.x data (written in the WAL
	// framing 3.0 reads), and each minor after it runs its etcd.
	seedDir := etcdtest.CopyDir(t, dataDir)
	at := map[string]string{"3.1": "3.1.20", "3.2": "3.2.32", "3.3": "3.3.27"}[minor(v)]
	if at == "" {
		at = "3.0.17"
	}
	for _, run := range []struct{ dir, bundle, at string }{{dataDir, "", "3.4.13"}, {seedDir, seedBundle, at}} {
		args := []string{"--target-version=3.7.3", "--exec=false"}
		if run.bundle != "" {
			args = append(args, "--bundled-versions="+run.bundle)
		}
		r = runMigrate(t, binDir, run.dir, nil, args...)
		if r.code != 0 {
			t.Fatalf("bundle %q: exit %d\n%s", run.bundle, r.code, r.stderr)
		}
		convertedAt := conversionTime(t, r.stderr, time.Now())
		for _, want := range []string{"kind=v2-to-v3 from=" + v + "/etcd2 version_txt=" + run.at + "/etcd3", "version_txt=3.7.3/etcd3"} {
			if !strings.Contains(r.stderr, want) {
				t.Fatalf("bundle %q: log lacks %q:\n%s", run.bundle, want, r.stderr)
			}
		}
		if got := readVersionTxt(t, run.dir); got != "3.7.3/etcd3\n" {
			t.Fatalf("bundle %q: version.txt = %q", run.bundle, got)
		}
		s := etcdtest.Serve(t, binDir, "3.7.3", run.dir)
		keys, leased, expired := compareV2V3(t, v2, s.DumpAll(t), convertedAt)
		s.Stop()
		if keys < 200 || leased < 30 {
			t.Fatalf("bundle %q: only %d keys (%d leased) compared", run.bundle, keys, leased)
		}
		t.Logf("etcd %s/etcd2 -> 3.7.3/etcd3, converted at %s: %d keys, %d leased, %d expired, identical (%s)", v, run.at, keys, leased, expired, logLine(r.stderr, `msg="v2 store converted"`))
	}
}

// checkOldV2Extras checks the old release's own dump for the writes of the
// fixture's extras (in the snapshots: a; in the WAL tail: b), so that the
// comparison after the conversion covers them.
func checkOldV2Extras(t *testing.T, v string, v2 map[string]etcdtest.V2Node) {
	t.Helper()
	for _, tag := range []string{"a", "b"} {
		inOrder := 0
		for k, n := range v2 {
			if strings.HasPrefix(k, "/registry/queue-"+tag+"/") && !n.Dir && strings.HasPrefix(n.Value, "in-order "+tag) {
				inOrder++
			}
		}
		if inOrder != 3 {
			t.Errorf("%d in-order keys under /registry/queue-%s, want 3", inOrder, tag)
		}
		if n, ok := v2["/registry/ttl-dir-"+tag]; !ok || !n.Dir || n.Expiration.IsZero() {
			t.Errorf("TTL dir %s: %+v", tag, n)
		}
		if n := v2["/registry/ttl-dir-"+tag+"/child"]; n.Value != "in a TTL dir" || !n.Expiration.IsZero() {
			t.Errorf("key in the TTL dir %s: %+v", tag, n)
		}
		if n := v2["/registry/cas-index-"+tag]; n.Value != "two" {
			t.Errorf("compare-and-swap on the index %s: %+v", tag, n)
		}
		for _, gone := range []string{"/registry/cad-" + tag, "/registry/short-lived-" + tag} {
			if n, ok := v2[gone]; ok {
				t.Errorf("%s is still there: %+v", gone, n)
			}
		}
		if !strings.HasPrefix(v, "2.2.") {
			if n := v2["/registry/refreshed-"+tag]; n.Value != "kept" || n.TTL < 3000 {
				t.Errorf("refreshed key %s: %+v, want value kept and TTL about 4000", tag, n)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// TestOldEtcd3Data: etcd3 data written by each real 3.0-3.3 release through the v3
// API (puts, overwrites, deletes, two leases with keys, a compaction): what the
// backend records, what migrate detects with and without version.txt, and the walk
// to 3.7.3 with every release bundled (3.0.17 -> 3.1.20 -> ... -> 3.7.3, one
// minor per step with that minor's etcd), which must keep every key, revision,
// lease and the compaction. With the default bundle (from 3.4) the walk from
// 3.0-3.2 needs minors that are not bundled: refused before anything is touched.
func TestOldEtcd3Data(t *testing.T) {
	for _, v := range oldEtcd3Versions {
		t.Run(v, func(t *testing.T) {
			binDir := oldBinDir(t, v)
			dataDir := filepath.Join(t.TempDir(), "data")
			var before etcdtest.Dump
			gen, err := fixture.GenerateEtcd3Old(binDir, v, dataDir, fixture.PortPair(t), true, func(c *clientv3.Client) error {
				before = dumpOld(t, v, c)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("etcd %s wrote %d keys at revision %d, compacted at %d, leases %v; files: %s", v, len(before.Keys), before.Revision, gen.CompactRevision, before.LeaseTTL, memberFiles(t, dataDir))

			st, err := datadir.Detect(dataDir)
			if err != nil {
				t.Fatal(err)
			}
			minorData, known := st.MinorFromData()
			t.Logf("datadir.Detect: Storage=%s StorageVersion=%q ClusterVersion=%q HasTerm=%v HasV3Keys=%v WALClusterVersion=%q; MinorFromData=%q,%v; String=%q",
				st.Storage, st.StorageVersion, st.ClusterVersion, st.HasTerm, st.HasV3Keys, st.WALClusterVersion, minorData, known, st.String())
			t.Logf("backend buckets: %s", backendBuckets(t, dataDir))
			if st.Storage != "etcd3" || !st.HasV3Keys {
				t.Fatalf("detected %+v, want etcd3 with key revisions", st)
			}

			stat := runMigrate(t, binDir, dataDir, nil, "status")
			t.Logf("status without version.txt (exit %d):\n%s%s", stat.code, stat.stdout, stat.stderr)
			withTxt := etcdtest.CopyDir(t, dataDir)
			if err := writeFile(filepath.Join(withTxt, "version.txt"), v+"/etcd3\n"); err != nil {
				t.Fatal(err)
			}
			stat = runMigrate(t, binDir, withTxt, nil, "status")
			t.Logf("status with version.txt (exit %d):\n%s%s", stat.code, stat.stdout, stat.stderr)

			for _, dir := range []string{dataDir, withTxt} {
				name := map[string]string{dataDir: "no version.txt", withTxt: "version.txt " + v + "/etcd3"}[dir]
				sum := etcdtest.Checksum(t, dir)
				if minor(v) != "3.3" {
					// With the default bundle (from 3.4) the minors in between
					// are missing: refused, nothing touched.
					r := runMigrate(t, binDir, dir, nil, "--target-version=3.7.3", "--exec=false")
					next := fmt.Sprintf("3.%d", int(minor(v)[2]-'0')+1)
					want := "no bundled etcd " + next + ".x, and upgrades go one minor at a time (bundled: 3.4.13, 3.5.35, 3.6.16, 3.7.3): bundle an etcd " + next + " release"
					if r.code != 2 || !strings.Contains(errorLine(t, r), want) {
						t.Fatalf("%s: exit %d, want 2 with %q:\n%s", name, r.code, want, r.stderr)
					}
					if etcdtest.Checksum(t, dir) != sum {
						t.Fatalf("%s: the refused run changed the data dir", name)
					}
					t.Logf("%s, default bundle: exit %d: %s", name, r.code, errorLine(t, r))
				}
				// With every release bundled it walks each minor with its etcd.
				r := runMigrate(t, binDir, dir, nil, "--target-version=3.7.3", "--exec=false", "--bundled-versions="+seedBundle)
				if r.code != 0 {
					t.Fatalf("%s: exit %d\n%s", name, r.code, r.stderr)
				}
				walked := strings.Split(seedBundle, ",")[2:] // the 3.x
				for i, next := range walked {
					if i+1 < len(walked) && minor(walked[i+1]) == minor(next) {
						continue // a walk runs the newest patch of a minor (3.4.25, not 3.4.13)
					}
					if minor(next) > minor(v) && !strings.Contains(r.stderr, "version_txt="+next+"/etcd3 etcd="+next) {
						t.Fatalf("%s: no minor step ran etcd %s:\n%s", name, next, r.stderr)
					}
				}
				if r.code != 0 {
					t.Fatalf("%s: exit %d\n%s", name, r.code, r.stderr)
				}
				if got := readVersionTxt(t, dir); got != "3.7.3/etcd3\n" {
					t.Fatalf("%s: version.txt = %q", name, got)
				}
				t.Logf("%s: exit 0: %s", name, logLine(r.stderr, "msg=plan"))
				s := etcdtest.Serve(t, binDir, "3.7.3", dir)
				after := s.DumpAll(t)
				if diffs := etcdtest.Compare(before, after, 20); len(diffs) > 0 {
					t.Fatalf("%s: the 3.7.3 keyspace differs from what etcd %s wrote:\n%s", name, v, strings.Join(diffs, "\n"))
				}
				for id, ttl := range before.LeaseTTL {
					if after.LeaseTTL[id] != ttl {
						t.Fatalf("%s: lease %x granted TTL %d, want %d", name, id, after.LeaseTTL[id], ttl)
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := s.Client.Get(ctx, "/registry/pods/ns-0/pod-0", clientv3.WithRev(gen.CompactRevision-1))
				cancel()
				if !errors.Is(err, rpctypes.ErrCompacted) {
					t.Fatalf("%s: read below the compaction (rev %d): %v, want %v", name, gen.CompactRevision-1, err, rpctypes.ErrCompacted)
				}
				t.Logf("%s: 3.7.3 serves %d keys at revision %d, %d leases, compacted at %d: identical", name, len(after.Keys), after.Revision, len(after.Leases), gen.CompactRevision)
				s.Stop()
			}
		})
	}
}

// dumpOld is etcdtest.DumpClient for the old servers: 3.0 has no lease TimeToLive
// and 3.0-3.2 no lease listing, so the leases come from the keys that hold them and,
// from 3.1, their TimeToLive.
func dumpOld(t *testing.T, v string, c *clientv3.Client) etcdtest.Dump {
	t.Helper()
	if minor(v) == "3.3" {
		return etcdtest.DumpClient(t, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, "\x00", clientv3.WithFromKey())
	if err != nil {
		t.Fatalf("dump: %v", err)
	}
	d := etcdtest.Dump{Revision: resp.Header.Revision, Keys: map[string]etcdtest.KV{}, Leases: map[int64][]string{}, LeaseTTL: map[int64]int64{}}
	for _, kv := range resp.Kvs {
		d.Keys[string(kv.Key)] = etcdtest.KV{Value: string(kv.Value), CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision, Version: kv.Version, Lease: kv.Lease}
		if kv.Lease != 0 {
			d.Leases[kv.Lease] = append(d.Leases[kv.Lease], string(kv.Key))
		}
	}
	for id, keys := range d.Leases {
		sort.Strings(keys)
		if minor(v) == "3.0" {
			// No TimeToLive in 3.0: the granted TTL is not readable.
			continue
		}
		ttl, err := c.TimeToLive(ctx, clientv3.LeaseID(id), clientv3.WithAttachedKeys())
		if err != nil {
			t.Fatalf("lease %x: %v", id, err)
		}
		d.LeaseTTL[id] = ttl.GrantedTTL
		var got []string
		for _, k := range ttl.Keys {
			got = append(got, string(k))
		}
		sort.Strings(got)
		if strings.Join(got, ",") != strings.Join(keys, ",") {
			t.Fatalf("lease %x: TimeToLive keys %v, keys holding it %v", id, got, keys)
		}
	}
	return d
}

// backendBuckets lists the meta and cluster buckets of the data dir's backend
// (read-only), for the record of what each release writes there.
func backendBuckets(t *testing.T, dataDir string) string {
	t.Helper()
	db, err := v3backend.OpenReadOnly(filepath.Join(dataDir, "member", "snap", "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var parts []string
	err = db.View(func(tx *bolt.Tx) error {
		var names []string
		_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error { names = append(names, string(name)); return nil })
		parts = append(parts, "buckets="+strings.Join(names, ","))
		for _, bn := range []string{"meta", "cluster"} {
			b := tx.Bucket([]byte(bn))
			if b == nil {
				parts = append(parts, bn+"=<none>")
				continue
			}
			var kvs []string
			_ = b.ForEach(func(k, val []byte) error {
				s := fmt.Sprintf("%q", val)
				if bn == "meta" && len(val) == 8 {
					s = fmt.Sprintf("uint64 %d", uint64(val[0])<<56|uint64(val[1])<<48|uint64(val[2])<<40|uint64(val[3])<<32|uint64(val[4])<<24|uint64(val[5])<<16|uint64(val[6])<<8|uint64(val[7]))
				}
				kvs = append(kvs, string(k)+"="+s)
				return nil
			})
			parts = append(parts, bn+"{"+strings.Join(kvs, " ")+"}")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(parts, " ")
}

// memberFiles names the files under dataDir/member.
func memberFiles(t *testing.T, dataDir string) string {
	t.Helper()
	var out []string
	_ = filepath.Walk(filepath.Join(dataDir, "member"), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			rel, _ := filepath.Rel(dataDir, p)
			out = append(out, rel)
		}
		return nil
	})
	return strings.Join(out, " ")
}

// minor is "3.1" for "3.1.20".
func minor(v string) string {
	p := strings.SplitN(v, ".", 3)
	return p[0] + "." + p[1]
}

// TestOldEtcd2MixedV3Refused: a 3.x release serves v2 and v3 side by side; data
// whose v2 store is recorded as the storage (version.txt <v>/etcd2) but whose v3
// backend holds keys too has no conversion that keeps both. Refused, untouched.
func TestOldEtcd2MixedV3Refused(t *testing.T) {
	for _, v := range oldEtcd3Versions {
		t.Run(v, func(t *testing.T) {
			binDir := oldBinDir(t, v)
			dataDir := filepath.Join(t.TempDir(), "data")
			s, err := fixture.StartOld(binDir, v, dataDir, fixture.PortPair(t), 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Stop() })
			if err := httpPutForm(s.URL+"/v2/keys/registry/pods/ns/a", "value=v2"); err != nil {
				t.Fatal(err)
			}
			c, err := clientv3.New(clientv3.Config{Endpoints: []string{s.URL}, DialTimeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err = c.Put(ctx, "/v3only/x", "y")
			cancel()
			c.Close()
			if err != nil {
				t.Fatal(err)
			}
			// The backend records the cluster version only once etcd has decided
			// it, a moment after it serves: stopping before (a loaded machine)
			// leaves data without it, which the refusal then describes otherwise.
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				if vs, err := etcdproc.GetVersions(context.Background(), s.URL); err == nil && vs.Cluster == minor(v)+".0" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("etcd %s did not decide its cluster version within 30 s", v)
				}
			}
			if err := s.Stop(); err != nil {
				t.Fatal(err)
			}
			if err := writeFile(filepath.Join(dataDir, "version.txt"), v+"/etcd2\n"); err != nil {
				t.Fatal(err)
			}
			sum := etcdtest.Checksum(t, dataDir)
			r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.7.3", "--exec=false")
			want := "version.txt says " + v + "/etcd2 but the data is etcd3 data (cluster version " + minor(v) + ".0): its v3 backend holds key revisions, so the data is etcd3"
			if r.code != 2 || !strings.Contains(errorLine(t, r), want) {
				t.Fatalf("exit %d, want 2 with %q:\n%s", r.code, want, r.stderr)
			}
			if etcdtest.Checksum(t, dataDir) != sum {
				t.Fatal("the refused run changed the data dir")
			}
			t.Logf("exit %d: %s", r.code, errorLine(t, r))
		})
	}
}

// httpPutForm PUTs a form body to url and wants 200 or 201.
func httpPutForm(url, form string) error {
	req, err := http.NewRequest(http.MethodPut, url, strings.NewReader(form))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("PUT %s: %s", url, resp.Status)
	}
	return nil
}
