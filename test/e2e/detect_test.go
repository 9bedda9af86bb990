package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// TestMissingVersionTxtDetected: a data dir without version.txt is planned from what
// its backend records (3.4.13 writes cluster version 3.4.0: the minor, patch
// unknown, so the newest bundled 3.4 runs first) and walks to the target.
func TestMissingVersionTxtDetected(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	dataDir := etcdtest.ExtractFixture(t, fixture34)
	if err := os.Remove(filepath.Join(dataDir, "version.txt")); err != nil {
		t.Fatal(err)
	}
	r := runMigrate(t, binDir, dataDir, nil, "status")
	if want := "version.txt: missing\ndata:        etcd3 data (cluster version 3.4.0)\ncurrent:     3.4.x/etcd3 (no version.txt; detected from the data, whose backend records the minor only)\nauth:        disabled (0 users, 0 roles)\nmembers:     1 (etcd-member 8e9e05c52164694d http://localhost:2380)\n"; r.code != 0 || !strings.HasSuffix(r.stdout, want) {
		t.Fatalf("status: exit %d\n%s\nwant suffix:\n%s", r.code, r.stdout, want)
	}
	r = runMigrate(t, binDir, dataDir, nil, "--target-version=3.7.3", "--exec=false", "--log-format=json")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	msgs := map[string]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("--log-format=json wrote a non-JSON line: %q", line)
		}
		msgs[m["msg"].(string)] = m
	}
	if p := msgs["plan"]; p == nil || p["current"] != "3.4.x/etcd3" || p["detected"] != "etcd3 data (cluster version 3.4.0)" {
		t.Fatalf("plan line = %v", p)
	}
	if d := msgs["migration done"]; d == nil || d["version_txt"] != "3.7.3/etcd3" || d["steps"] != float64(4) {
		t.Fatalf("done line = %v", d)
	}
	if got := readVersionTxt(t, dataDir); got != "3.7.3/etcd3\n" {
		t.Fatalf("version.txt = %q", got)
	}
}

// TestMoveBinaries: unless DO_NOT_MOVE_BINARIES=true, etcd-<target> and
// etcdctl-<target> are copied to etcd and etcdctl in the bin dir.
func TestMoveBinaries(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	fake := fakeBinDir(t, binDir, func(string) {})
	dataDir := filepath.Join(t.TempDir(), "data")
	for _, env := range []string{"DO_NOT_MOVE_BINARIES=true", "DO_NOT_MOVE_BINARIES="} {
		r := runMigrate(t, binDir, dataDir, []string{env}, "--target-version=3.6.16", "--exec=false", "--bin-dir="+fake)
		if r.code != 0 {
			t.Fatalf("%s: exit %d\n%s", env, r.code, r.stderr)
		}
		for _, name := range []string{"etcd", "etcdctl"} {
			fi, err := os.Lstat(filepath.Join(fake, name))
			moved := err == nil
			if moved != (env == "DO_NOT_MOVE_BINARIES=") {
				t.Fatalf("%s: %s in bin dir: %v", env, name, moved)
			}
			if moved {
				want, _ := os.Stat(filepath.Join(binDir, name+"-3.6.16"))
				if !fi.Mode().IsRegular() || fi.Size() != want.Size() || fi.Mode().Perm() != 0o755 {
					t.Fatalf("%s: %s is %v size %d, want a 0755 copy of %s-3.6.16", env, name, fi.Mode(), fi.Size(), name)
				}
			}
		}
	}
}
