package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

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

// noDAC runs migrate as root without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH
// (dropped from the bounding set, so neither migrate nor the etcd it starts gets
// them back): mode bits then apply to root as to anyone. The tests run as root,
// for whom a chmod 000 alone would change nothing.
var noDAC = []string{"setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"}

// readOnlyMount runs migrate in a private mount namespace in which the data dir is
// bind-mounted onto itself read-only: a real read-only mount (EROFS), seen by
// nothing outside that run.
func readOnlyMount(dataDir string) []string {
	return []string{"unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"`, dataDir}
}

// hostileTimeout bounds one run: nothing hostile may make migrate hang (a stale
// lock must not block it forever).
const hostileTimeout = 2 * time.Minute

// runWrapped runs migrate like runMigrate, behind a command prefix (setpriv,
// unshare) when wrap is set, and fails the test if it runs past hostileTimeout.
func runWrapped(t *testing.T, binDir, dataDir string, env, wrap []string, args ...string) result {
	t.Helper()
	cmd := migrateCmd(t, binDir, dataDir, env, args...)
	if len(wrap) > 0 {
		p, err := exec.LookPath(wrap[0])
		if err != nil {
			t.Skipf("skipped: %s (util-linux) is needed for this case: %v", wrap[0], err)
		}
		// The wrappers need root with mount and capability rights; where a run
		// cannot have them, the case is skipped (and not counted as passed).
		if out, err := exec.Command(p, append(append([]string(nil), wrap[1:]...), "true")...).CombinedOutput(); err != nil {
			t.Skipf("skipped: this case needs root with mount/capability rights (%s: %v: %s)", wrap[0], err, strings.TrimSpace(string(out)))
		}
		cmd.Path = p
		cmd.Args = append(append([]string(nil), wrap...), cmd.Args...)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(hostileTimeout):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("migrate did not finish within %v (blocked?); stderr:\n%s", hostileTimeout, errb.String())
	}
	return runResult(t, err, &out, &errb)
}

// deadPid is the pid of a process that has exited.
func deadPid(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// hostileSetup is one prepared run.
type hostileSetup struct {
	dataDir string
	args    []string
	env     []string
	// wrap is a command prefix (setpriv, unshare) for the run.
	wrap []string
	// changes: a case that is expected to succeed and migrate the data (checked by
	// check instead of the checksum).
	changes bool
	// check makes further assertions on a run that behaved as expected.
	check func(t *testing.T, r result)
	// path is what %s in the wanted error stands for (default: the data dir).
	path string
}

// TestHostileInput is issue 5's hostile input table: every bad input gets its exit
// code (2 bad input, nothing touched; 1 a failed step; 0 for the few inputs that
// must work), one error line naming the problem, and the data dir byte-for-byte
// unchanged unless the case is one that must succeed.
func TestHostileInput(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	pristine := etcdtest.ExtractFixture(t, fixture34)
	walked := etcdtest.CopyDir(t, pristine)
	if r := runMigrate(t, binDir, walked, nil, "--target-version=3.7.3", "--exec=false"); r.code != 0 {
		t.Fatalf("walk: exit %d\n%s", r.code, r.stderr)
	}

	type setup = hostileSetup
	cases := []struct {
		name string
		// prepare gets a fresh copy of the 3.4.13 fixture and returns the run.
		prepare func(t *testing.T, dataDir string) setup
		code    int
		// want is a substring of the one error line (%d: the port, %s: the data
		// dir); "" for a case that must succeed.
		want string
	}{
		// version.txt
		{"malformed version.txt", func(t *testing.T, d string) setup {
			writeFile(d+"/version.txt", "3.4/etcd3\n")
			return setup{dataDir: d}
		}, 2, `version.txt: invalid version pair "3.4/etcd3": invalid etcd version "3.4": want major.minor.patch`},
		{"empty version.txt", func(t *testing.T, d string) setup {
			writeFile(d+"/version.txt", "")
			return setup{dataDir: d}
		}, 2, `version.txt: empty version: want <major.minor.patch>/<etcd2|etcd3>`},
		{"binary version.txt", func(t *testing.T, d string) setup {
			writeFile(d+"/version.txt", "\x00\x01\xff\xfe")
			return setup{dataDir: d}
		}, 2, `missing /<etcd2|etcd3>`},
		{"huge version.txt", func(t *testing.T, d string) setup {
			writeFile(d+"/version.txt", "3.4.13/etcd3\n"+strings.Repeat("x", 8<<20))
			return setup{dataDir: d}
		}, 2, "version.txt is longer than 64 bytes: it should hold one line like 3.5.35/etcd3"},
		{"unknown storage", func(t *testing.T, d string) setup {
			writeFile(d+"/version.txt", "3.4.13/etcd4\n")
			return setup{dataDir: d}
		}, 2, `version.txt: invalid version pair "3.4.13/etcd4": unknown storage "etcd4": use etcd2 or etcd3`},
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

		// target and path
		{"target not bundled", func(t *testing.T, d string) setup {
			return setup{dataDir: d, args: []string{"--target-version=3.8.0"}}
		}, 2, "target version 3.8.0 is not bundled, nor any etcd 3.8.x (bundled: 3.4.13, 3.5.35, 3.6.16, 3.7.3): set TARGET_VERSION to one of them"},
		{"malformed target version", func(t *testing.T, d string) setup {
			return setup{dataDir: d, args: []string{"--target-version=3.7"}}
		}, 2, `TARGET_VERSION: invalid etcd version "3.7"`},
		{"etcd2 target without a v2 API", func(t *testing.T, d string) setup {
			return setup{dataDir: etcdtest.CopyDir(t, walked), args: []string{"--target-storage=etcd2", "--target-version=3.6.16"}}
		}, 2, "3.7.3/etcd3 -> 3.6.16/etcd2: etcd 3.6.16 serves no v2 API (etcd2 storage ends with 3.5): target an etcd 3.5 or older"},
		{"upgrade over an unbundled minor", func(t *testing.T, d string) setup {
			return setup{dataDir: d, args: []string{"--bundled-versions=3.4.13,3.7.3"}}
		}, 2, "3.4.13/etcd3 -> 3.7.3/etcd3: no bundled etcd 3.5.x, and upgrades go one minor at a time (bundled: 3.4.13, 3.7.3)"},
		{"rollback three minors with no path", func(t *testing.T, d string) setup {
			return setup{dataDir: etcdtest.CopyDir(t, walked), args: []string{"--bundled-versions=3.4.13,3.7.3", "--target-version=3.4.13"}}
		}, 2, "3.7.3/etcd3 -> 3.4.13/etcd3: no bundled etcd 3.6.x, and rollbacks go one minor at a time (bundled: 3.4.13, 3.7.3)"},

		// binaries
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
		{"binary --version disagrees with its name", func(t *testing.T, d string) setup {
			fake := fakeBinDir(t, binDir, func(dir string) {
				os.Remove(dir + "/etcd-3.6.16")
				os.Symlink(filepath.Join(binDir, "etcd-3.5.35"), dir+"/etcd-3.6.16")
			})
			return setup{dataDir: d, args: []string{"--bin-dir=" + fake}}
		}, 2, `etcd-3.6.16 reports version "3.5.35" (etcd --version) but its name says 3.6.16: the bin dir holds a mislabeled binary`},
		{"binary is not etcd", func(t *testing.T, d string) setup {
			fake := fakeBinDir(t, binDir, func(dir string) {
				os.Remove(dir + "/etcd-3.7.3")
				os.WriteFile(dir+"/etcd-3.7.3", []byte("#!/bin/sh\necho hello\n"), 0o755)
			})
			return setup{dataDir: d, args: []string{"--bin-dir=" + fake}}
		}, 2, "etcd-3.7.3: `etcd-3.7.3 --version` printed no version: it is not a working etcd binary"},

		// the data dir itself
		{"data dir is a file", func(t *testing.T, d string) setup {
			f := filepath.Join(t.TempDir(), "data")
			writeFile(f, "not a dir")
			return setup{dataDir: f}
		}, 2, "is not a directory: point --data-dir (DATA_DIRECTORY) at the etcd data directory"},
		{"unreadable data dir", func(t *testing.T, d string) setup {
			if err := os.Chmod(d, 0); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(d, 0o700) })
			return setup{dataDir: d, wrap: noDAC}
		}, 2, "data dir %s is not readable and writable by this process (uid 0): permission denied"},
		{"data dir on a read-only mount", func(t *testing.T, d string) setup {
			return setup{dataDir: d, wrap: readOnlyMount(d)}
		}, 2, "data dir %s is not readable and writable by this process (uid 0): read-only file system"},
		{"symlinked data dir is followed", func(t *testing.T, real string) setup {
			link := filepath.Join(t.TempDir(), "data-link")
			if err := os.Symlink(real, link); err != nil {
				t.Fatal(err)
			}
			return setup{dataDir: link, args: []string{"--target-version=3.5.35"}, changes: true, check: func(t *testing.T, r result) {
				if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
					t.Fatalf("the link %s is no longer a symlink (%v)", link, err)
				}
				if got := readVersionTxt(t, real); got != "3.5.35/etcd3\n" {
					t.Fatalf("real data dir's version.txt = %q, want 3.5.35/etcd3", got)
				}
				// The backup is a copy of the real files, beside the real dir.
				bak := real + ".bak"
				if fi, err := os.Lstat(filepath.Join(bak, "member", "snap", "db")); err != nil || !fi.Mode().IsRegular() || fi.Size() == 0 {
					t.Fatalf("backup %s has no real member/snap/db (%v)", bak, err)
				}
				if got := readVersionTxt(t, bak); got != "3.4.13/etcd3\n" {
					t.Fatalf("backup version.txt = %q", got)
				}
				if lock.PathFor(real) != real {
					t.Fatalf("the lock is taken on %s, not on the real data dir", lock.PathFor(real))
				}
				if _, err := os.Lstat(link + ".bak"); err == nil {
					t.Fatalf("a backup beside the link: %s", link+".bak")
				}
				if !strings.Contains(r.stderr, "data dir is a symbolic link") {
					t.Fatalf("no log line about the symlink:\n%s", r.stderr)
				}
			}}
		}, 0, ""},
		{"symlinked data dir locked through its real path", func(t *testing.T, real string) setup {
			link := filepath.Join(t.TempDir(), "data-link")
			if err := os.Symlink(real, link); err != nil {
				t.Fatal(err)
			}
			lk, err := lock.Acquire(real)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { lk.Release() })
			return setup{dataDir: link, path: real}
		}, 2, fmt.Sprintf("another migrate holds the lock on %%s (pid %d", os.Getpid())},
		{"dangling symlink as data dir", func(t *testing.T, d string) setup {
			link := filepath.Join(t.TempDir(), "data-link")
			dir := t.TempDir()
			if err := os.Symlink(filepath.Join(dir, "gone"), link); err != nil {
				t.Fatal(err)
			}
			return setup{dataDir: link, path: dir}
		}, 2, "is a symbolic link to %s/gone, which does not exist"},

		// ports and listeners
		{"client port in use", func(t *testing.T, d string) setup {
			return setup{dataDir: d, args: []string{fmt.Sprintf("--port=%d", listenLoopback(t))}}
		}, 2, "client port 127.0.0.1:%d is in use"},
		{"peer port in use", func(t *testing.T, d string) setup {
			return setup{dataDir: d, args: []string{fmt.Sprintf("--peer-port=%d", listenLoopback(t))}}
		}, 2, "peer port localhost:%d is in use"},
		{"private client URL not loopback", func(t *testing.T, d string) setup {
			return setup{dataDir: d, env: []string{"LISTEN_CLIENT_URLS=http://0.0.0.0:18629"}}
		}, 2, "private client URL http://0.0.0.0:18629 is not loopback"},
		{"ETCD_CREDS listens outside loopback", func(t *testing.T, d string) setup {
			return setup{dataDir: d, env: []string{"ETCD_CREDS=--listen-metrics-urls http://0.0.0.0:2381"}}
		}, 2, "ETCD_CREDS (--etcd-server-extra-args) sets --listen-metrics-urls=http://0.0.0.0:2381: the migration etcd listens on loopback only"},

		// ETCD_CREDS files
		{"ETCD_CREDS names a missing TLS file", func(t *testing.T, d string) setup {
			dir := t.TempDir()
			writeFile(dir+"/peer.crt", "cert")
			return setup{dataDir: d, path: dir + "/no-such.key", env: []string{"ETCD_CREDS=--peer-cert-file " + dir + "/peer.crt --peer-key-file " + dir + "/no-such.key"}}
		}, 2, "ETCD_CREDS (--etcd-server-extra-args): --peer-key-file=%s: no such file or directory: fix the path or mount the file"},
		{"ETCD_CREDS names an unreadable TLS file", func(t *testing.T, d string) setup {
			dir := t.TempDir()
			os.WriteFile(dir+"/ca.crt", []byte("ca"), 0)
			return setup{dataDir: d, path: dir + "/ca.crt", wrap: noDAC, env: []string{"ETCD_CREDS=--peer-trusted-ca-file=" + dir + "/ca.crt"}}
		}, 2, "ETCD_CREDS (--etcd-server-extra-args): --peer-trusted-ca-file=%s cannot be read: permission denied"},

		// etcd settings (pkg/etcdconfig): nothing may move the data, the WAL or the
		// member away from what migrate checked, and the target etcd must accept its
		// command line, before anything is touched.
		{"ETCD_CREDS moves the data dir", func(t *testing.T, d string) setup {
			other := filepath.Join(t.TempDir(), "x")
			return setup{dataDir: d, path: other, env: []string{"ETCD_CREDS=--data-dir=" + other}, check: func(t *testing.T, r result) {
				if _, err := os.Stat(other); err == nil {
					t.Fatalf("%s was created", other)
				}
			}}
		}, 2, "ETCD_CREDS (--etcd-server-extra-args) sets --data-dir=%s: the steps run on the data dir migrate checked and locked"},
		{"ETCD_CREDS sets a WAL dir", func(t *testing.T, d string) setup {
			return setup{dataDir: d, env: []string{"ETCD_CREDS=--wal-dir /var/lib/etcd-wal"}}
		}, 2, "--wal-dir=/var/lib/etcd-wal in ETCD_CREDS: the WAL dir is the served etcd's setting, not the steps' alone: give it as --wal-dir after -- or as ETCD_WAL_DIR, and remove it from ETCD_CREDS"},
		{"WAL dir after -- without the WAL", func(t *testing.T, d string) setup {
			return setup{dataDir: d, args: []string{"--exec=true", "--", "--wal-dir=/var/lib/etcd-wal"}}
		}, 2, "the WAL dir /var/lib/etcd-wal (--wal-dir/ETCD_WAL_DIR) holds no WAL files, but the data dir %s holds etcd data: point --wal-dir at this member's WAL, or drop it if the WAL is in"},
		{"ETCD_WAL_DIR without the WAL", func(t *testing.T, d string) setup {
			return setup{dataDir: d, env: []string{"ETCD_WAL_DIR=/var/lib/etcd-wal"}}
		}, 2, "the WAL dir /var/lib/etcd-wal (--wal-dir/ETCD_WAL_DIR) holds no WAL files"},
		{"ETCD_CREDS forces a new cluster", func(t *testing.T, d string) setup {
			return setup{dataDir: d, env: []string{"ETCD_CREDS=--force-new-cluster"}}
		}, 2, "ETCD_CREDS (--etcd-server-extra-args) sets --force-new-cluster: it would rewrite the membership stored in the data at every step"},
		{"target etcd does not know a flag after --", func(t *testing.T, d string) setup {
			return setup{dataDir: d, args: []string{"--exec=true", "--", "--experimental-initial-corrupt-check"}}
		}, 2, "the target etcd 3.7.3 does not accept its command line: flag provided but not defined: -experimental-initial-corrupt-check: replace --experimental-initial-corrupt-check after -- with --feature-gates=InitialCorruptCheck=true"},
		{"misspelt command", func(t *testing.T, d string) setup {
			return setup{dataDir: d, args: []string{"stauts"}}
		}, 2, `unknown command "stauts" for "migrate" (did you mean "status"?)`},

		// locks
		{"second concurrent migrator", func(t *testing.T, d string) setup {
			lk, err := lock.Acquire(d)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { lk.Release() })
			return setup{dataDir: d}
		}, 2, fmt.Sprintf("another migrate holds the lock on %%s (pid %d", os.Getpid())},
		{"stale lock file of an older migrate naming a dead pid", func(t *testing.T, d string) setup {
			writeFile(filepath.Join(filepath.Dir(d), "."+filepath.Base(d)+".migrate.lock"), fmt.Sprintf("%d\n", deadPid(t)))
			return setup{dataDir: d, args: []string{"--target-version=3.4.13"}}
		}, 0, ""},
		{"lock holder killed with SIGKILL", func(t *testing.T, d string) setup {
			holdAndKillLock(t, d)
			return setup{dataDir: d, args: []string{"--target-version=3.4.13"}}
		}, 0, ""},

		// etcd itself
		{"etcd args name another data dir", func(t *testing.T, d string) setup {
			return setup{dataDir: d, args: []string{"--exec=true", "--", "--data-dir=/var/lib/other"}}
		}, 2, "etcd would serve data dir /var/lib/other (--data-dir after --) but the data dir to migrate is"},
		{"step etcd fails to start", func(t *testing.T, d string) setup {
			return setup{dataDir: d, env: []string{"ETCD_CREDS=--no-such-flag"}}
		}, 1, "%s.bak; rerun to retry it): step upgrade-minor 3.4.13/etcd3 -> 3.5.35/etcd3 (run etcd-3.5.35): etcd 3.5.35 exited early (exit status 2): last error line: flag provided but not defined: -no-such-flag"},
	}
	passed := 0
	var failed []string
	// How long each refusal (exit 2) took from start to exit, for the summary.
	type refusal struct {
		name string
		took time.Duration
	}
	var refusals []refusal
	for _, tc := range cases {
		reached := false
		ok := t.Run(tc.name, func(t *testing.T) {
			s := tc.prepare(t, etcdtest.CopyDir(t, pristine))
			before := etcdtest.Checksum(t, s.dataDir)
			args := append([]string{"--target-version=3.7.3", "--exec=false"}, s.args...)
			start := time.Now()
			r := runWrapped(t, binDir, s.dataDir, s.env, s.wrap, args...)
			took := time.Since(start)
			if tc.want == "" {
				if r.code != tc.code || strings.Contains(r.stderr, "migrate: error:") {
					t.Fatalf("exit %d, want %d and no error; stderr:\n%s", r.code, tc.code, r.stderr)
				}
			} else {
				line := errorLine(t, r)
				want := tc.want
				if strings.Contains(want, "%d") {
					want = fmt.Sprintf(want, portOf(args))
				}
				if strings.Contains(want, "%s") {
					p := s.path
					if p == "" {
						p = s.dataDir
					}
					want = fmt.Sprintf(want, p)
				}
				if r.code != tc.code || !strings.Contains(line, want) {
					t.Fatalf("exit %d, want %d; error line:\n%s\nwant it to contain:\n%s", r.code, tc.code, line, want)
				}
				t.Logf("exit %d after %v: %s", r.code, took.Round(time.Millisecond), line)
				if r.code == 2 {
					refusals = append(refusals, refusal{tc.name, took})
				}
			}
			if !s.changes {
				if after := etcdtest.Checksum(t, s.dataDir); after != before {
					t.Fatalf("data dir changed")
				}
			}
			if s.check != nil {
				s.check(t, r)
			}
			reached = true
		})
		if ok && reached {
			passed++
		} else {
			failed = append(failed, tc.name)
		}
	}
	if len(failed) > 0 {
		t.Logf("hostile inputs failed or skipped: %s", strings.Join(failed, "; "))
	}
	summary := fmt.Sprintf("hostile inputs passed: %d/%d", passed, len(cases))
	if n := len(refusals); n > 0 {
		sort.Slice(refusals, func(i, j int) bool { return refusals[i].took < refusals[j].took })
		slow := refusals[n-1]
		summary += fmt.Sprintf("; %d refusals (exit 2) took %d ms median, %d ms at most (%s)", n,
			refusals[n/2].took.Milliseconds(), slow.took.Milliseconds(), slow.name)
	}
	etcdtest.Report(t, "hostile", summary)
}

// listenLoopback holds a loopback port for the rest of the test and returns it.
func listenLoopback(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// holdAndKillLock has another process take dataDir's lock (flock(1) on a shell's
// descriptor of the data dir, the same flock(2) lock migrate takes; the shell then
// execs sleep, which holds it), then SIGKILLs it: the kernel must have dropped the
// lock.
func holdAndKillLock(t *testing.T, dataDir string) {
	t.Helper()
	path := lock.PathFor(dataDir)
	cmd := exec.Command("sh", "-c", `exec 9<"$0" && flock -x 9 && exec sleep 600`, path)
	if err := cmd.Start(); err != nil {
		t.Fatalf("flock: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		lk, err := lock.Acquire(dataDir)
		if errors.Is(err, lock.ErrHeld) {
			break
		}
		if err == nil {
			lk.Release()
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("flock never took %s", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
}

func portOf(args []string) int {
	port := 0
	for _, a := range args {
		fmt.Sscanf(a, "--port=%d", &port)
		fmt.Sscanf(a, "--peer-port=%d", &port)
	}
	return port
}
