package e2e

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// TestEtcd2WithoutSnapshotKeepsIndexes: etcd2 data whose v2 store has no snapshot
// yet (a small or young cluster: etcd snapshots every 10,000 entries by default)
// is rebuilt from the WAL alone, membership changes included. Those take store
// indexes too, so each key's create/mod revision must still be its v2
// createdIndex/modifiedIndex exactly (a replay that skipped them gave every key one
// index less per member).
func TestEtcd2WithoutSnapshotKeepsIndexes(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	s := etcdtest.ServeV2(t, binDir, "3.4.13", dataDir)
	put := func(key, value string) {
		req, _ := http.NewRequest(http.MethodPut, s.ClientURL+"/v2/keys"+key, strings.NewReader(url.Values{"value": {value}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Fatalf("PUT %s: %s", key, resp.Status)
		}
	}
	for _, k := range []string{"/registry/pods/ns/a", "/registry/pods/ns/b", "/registry/services/x"} {
		put(k, `{"kind":"`+k+`"}`)
	}
	put("/registry/pods/ns/a", `{"kind":"a, overwritten"}`)
	want := etcdtest.DumpV2(t, s.ClientURL)
	s.Stop()
	if snaps, _ := filepath.Glob(filepath.Join(dataDir, "member", "snap", "*.snap")); len(snaps) != 0 {
		t.Fatalf("the v2 store has a snapshot already (%v): this test needs a WAL-only store", snaps)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "version.txt"), []byte("3.4.13/etcd2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.4.13", "--exec=false")
	if r.code != 0 {
		t.Fatalf("migrate: exit %d\n%s", r.code, r.stderr)
	}
	got := etcdtest.Serve(t, binDir, "3.4.13", dataDir).DumpAll(t)
	n := 0
	for k, w := range want {
		if w.Dir {
			continue
		}
		n++
		g, ok := got.Keys[k]
		if !ok || g.Value != w.Value || g.CreateRevision != int64(w.CreatedIndex) || g.ModRevision != int64(w.ModifiedIndex) {
			t.Errorf("%s: got %+v (present %v), want value %q created %d modified %d", k, g, ok, w.Value, w.CreatedIndex, w.ModifiedIndex)
		}
	}
	if n != 3 || len(got.Keys) != n {
		t.Fatalf("%d v2 keys, %d v3 keys: want 3 of each", n, len(got.Keys))
	}
}
