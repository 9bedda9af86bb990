package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/pkg/lock"
)

// fakeBinDir links the real bundled binaries into a new dir, then lets edit change it.
func fakeBinDir(t *testing.T, binDir string, edit func(dir string)) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir(binDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.Contains(e.Name(), "-") && e.Name() != "migrate" {
			continue // only the versioned binaries (a copied etcd/etcdctl is not bundled)
		}
		if err := os.Symlink(filepath.Join(binDir, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	edit(dir)
	return dir
}

// TestBadInput: each bad input gets exit 2 (or 1 for a failed step), one error line
// naming the problem, and the data dir byte-for-byte unchanged.
func TestBadInput(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	pristine := etcdtest.ExtractFixture(t, fixture34)
	walked := etcdtest.CopyDir(t, pristine)
	if r := runMigrate(t, binDir, walked, nil, "--target-version=3.7.3", "--exec=false"); r.code != 0 {
		t.Fatalf("walk: exit %d\n%s", r.code, r.stderr)
	}

	type setup struct {
		dataDir string
		args    []string
		env     []string
	}
	cases := []struct {
		name string
		// prepare gets a fresh copy of the 3.4.13 fixture and returns the run.
		prepare func(t *testing.T, dataDir string) setup
		code    int
		want    string
	}{
		{"malformed version.txt", func(t *testing.T, d string) setup {
			writeFile(d+"/version.txt", "3.4/etcd3\n")
			return setup{dataDir: d}
		}, 2, `version.txt: invalid version pair "3.4/etcd3": invalid etcd version "3.4": want major.minor.patch`},
		{"unknown storage", func(t *testing.T, d string) setup {
			writeFile(d+"/version.txt", "3.4.13/etcd4\n")
			return setup{dataDir: d}
		}, 2, `version.txt: invalid version pair "3.4.13/etcd4": unknown storage "etcd4": use etcd2 or etcd3`},
		{"binary version.txt", func(t *testing.T, d string) setup {
			writeFile(d+"/version.txt", "\x00\x01\xff\xfe")
			return setup{dataDir: d}
		}, 2, `missing /<etcd2|etcd3>`},
		{"version.txt contradicts data", func(t *testing.T, d string) setup {
			d = etcdtest.CopyDir(t, walked)
			writeFile(d+"/version.txt", "3.4.13/etcd3\n")
			return setup{dataDir: d}
		}, 2, "version.txt says 3.4.13/etcd3 but the data is etcd3 data (storage version 3.7.0, cluster version 3.7.0)"},
		{"etcd2 data without version.txt", func(t *testing.T, d string) setup {
			d = etcdtest.ExtractFixture(t, fixtureEtcd2)
			os.Remove(d + "/version.txt")
			return setup{dataDir: d}
		}, 2, "has no version.txt: detected etcd3 data (cluster version 3.4.0) without a single v3 key, which may be etcd2 data served by etcd 3.x"},
		{"target not bundled", func(t *testing.T, d string) setup {
			return setup{dataDir: d, args: []string{"--target-version=3.8.0"}}
		}, 2, "target version 3.8.0 is not bundled (bundled: 3.4.13, 3.5.35, 3.6.16, 3.7.3)"},
		{"malformed target version", func(t *testing.T, d string) setup {
			return setup{dataDir: d, args: []string{"--target-version=3.7"}}
		}, 2, `TARGET_VERSION: invalid etcd version "3.7"`},
		{"etcd2 target without a v2 API", func(t *testing.T, d string) setup {
			return setup{dataDir: etcdtest.CopyDir(t, walked), args: []string{"--target-storage=etcd2", "--target-version=3.6.16"}}
		}, 2, "3.7.3/etcd3 -> 3.6.16/etcd2: etcd 3.6.16 serves no v2 API (etcd2 storage ends with 3.5): target an etcd 3.5 or older"},
		{"missing binary", func(t *testing.T, d string) setup {
			fake := fakeBinDir(t, binDir, func(dir string) { os.Remove(dir + "/etcd-3.6.16") })
			return setup{dataDir: d, args: []string{"--bin-dir=" + fake}}
		}, 2, "etcd-3.6.16 is missing: build it (make etcd-binaries) or fix --bin-dir/BUNDLED_VERSIONS"},
		{"non-executable binary", func(t *testing.T, d string) setup {
			fake := fakeBinDir(t, binDir, func(dir string) {
				os.Remove(dir + "/etcd-3.5.35")
				writeFile(dir+"/etcd-3.5.35", "#!/bin/sh\n")
			})
			return setup{dataDir: d, args: []string{"--bin-dir=" + fake}}
		}, 2, "etcd-3.5.35 is not an executable file (mode -rw-r--r--)"},
		{"data dir is a file", func(t *testing.T, d string) setup {
			f := filepath.Join(t.TempDir(), "data")
			writeFile(f, "not a dir")
			return setup{dataDir: f}
		}, 2, "is not a directory: point --data-dir (DATA_DIRECTORY) at the etcd data directory"},
		{"client port in use", func(t *testing.T, d string) setup {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			port := l.Addr().(*net.TCPAddr).Port
			return setup{dataDir: d, args: []string{fmt.Sprintf("--port=%d", port)}}
		}, 2, "client port 127.0.0.1:%d is in use"},
		{"private client URL not loopback", func(t *testing.T, d string) setup {
			return setup{dataDir: d, env: []string{"LISTEN_CLIENT_URLS=http://0.0.0.0:18629"}}
		}, 2, "private client URL http://0.0.0.0:18629 is not loopback"},
		{"second concurrent migrator", func(t *testing.T, d string) setup {
			lk, err := lock.Acquire(d)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { lk.Release() })
			return setup{dataDir: d}
		}, 2, fmt.Sprintf("another migrate holds the lock on %%s (pid %d", os.Getpid())},
		{"etcd args name another data dir", func(t *testing.T, d string) setup {
			return setup{dataDir: d, args: []string{"--exec=true", "--", "--data-dir=/var/lib/other"}}
		}, 2, "etcd would serve data dir /var/lib/other (--data-dir after --) but the data dir to migrate is"},
		{"step etcd fails to start", func(t *testing.T, d string) setup {
			return setup{dataDir: d, env: []string{"ETCD_CREDS=--no-such-flag"}}
		}, 1, "%s.bak; rerun to retry it): step upgrade-minor 3.4.13/etcd3 -> 3.5.35/etcd3 (run etcd-3.5.35): etcd 3.5.35 exited early (exit status 2): last error line: flag provided but not defined: -no-such-flag"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.prepare(t, etcdtest.CopyDir(t, pristine))
			before := etcdtest.Checksum(t, s.dataDir)
			args := append([]string{"--target-version=3.7.3", "--exec=false"}, s.args...)
			r := runMigrate(t, binDir, s.dataDir, s.env, args...)
			line := errorLine(t, r)
			want := tc.want
			if strings.Contains(want, "%d") {
				want = fmt.Sprintf(want, portOf(args))
			}
			if strings.Contains(want, "%s") {
				want = fmt.Sprintf(want, s.dataDir)
			}
			if r.code != tc.code || !strings.Contains(line, want) {
				t.Fatalf("exit %d, want %d; error line:\n%s\nwant it to contain:\n%s", r.code, tc.code, line, want)
			}
			if after := etcdtest.Checksum(t, s.dataDir); after != before {
				t.Fatalf("data dir changed")
			}
		})
	}
}

func portOf(args []string) int {
	port := 0
	for _, a := range args {
		fmt.Sscanf(a, "--port=%d", &port)
	}
	return port
}
