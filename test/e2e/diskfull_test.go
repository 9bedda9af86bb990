package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-version"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/pkg/fault"
	"github.com/etcd-migrate/etcd-migrate/pkg/memberdir"
	"github.com/etcd-migrate/etcd-migrate/pkg/migrate"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// mountTmpfs mounts a size-limited tmpfs (a real file system that runs out of
// space) or skips the test, saying why.
func mountTmpfs(t *testing.T, sizeMiB int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm", sizeMiB), "tmpfs", dir).CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("cannot mount a size-limited tmpfs here (needs root and mount rights): %v %s", err, strings.TrimSpace(string(out)))
		tmpfsSkip.Lock()
		tmpfsSkip.reason = msg
		tmpfsSkip.Unlock()
		t.Skip(msg)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// tmpfsSkip holds why the last mountTmpfs skipped, for the ENOSPC summary line.
var tmpfsSkip struct {
	sync.Mutex
	reason string
}

func lastTmpfsSkip() string {
	tmpfsSkip.Lock()
	defer tmpfsSkip.Unlock()
	return tmpfsSkip.reason
}

// TestDiskFull runs the etcd2 fixture's walk to 3.7.3 on a size-limited tmpfs and
// fills that file system at one point of the run, so the writes after it fail with
// a real ENOSPC: the backup copy, the v2 -> v3 conversion, a step's etcd (its
// readiness write, snapshot and WAL), version.txt. Each time: exit 1 with one
// error line naming a path and "no space left on device", version.txt intact and
// agreeing with the data, the data served by the etcd version.txt names, and, once
// space is freed, a rerun that completes with every key. A run whose file system
// is too small to start is refused up front, naming the space needed.
func TestDiskFull(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	pristine := etcdtest.ExtractFixture(t, fixtureEtcd2)
	ref := etcdtest.CopyDir(t, pristine)
	if r := runMigrate(t, binDir, ref, nil, "--target-version=3.7.3", "--exec=false"); r.code != 0 {
		t.Fatalf("uninterrupted run: exit %d\n%s", r.code, r.stderr)
	}
	s := etcdtest.Serve(t, binDir, "3.7.3", ref)
	want := s.DumpAll(t)
	s.Stop()

	// The summary counts what happened: a case that skipped (no tmpfs here) ran
	// nothing and is never counted as passed.
	cases := &caseTally{}
	defer func() {
		etcdtest.Report(t, "enospc", "ENOSPC cases (a size-limited tmpfs, filled at a fault point): "+cases.String())
	}()

	// The data plus the backup and a second member dir fit in 400 MiB; the fixture's
	// 64 MiB WAL segments are sparse.
	const fsMiB = 400
	points := []string{
		fault.BackupBeforeCopy,       // the backup copy
		fault.BackupAfterRename,      // the v2 -> v3 conversion's spool and backend
		fault.MemberDirMidSwap,       // the conversion's swap, then etcd 3.4 on a full disk
		fault.StepBeforeStart + ":2", // etcd 3.5 starting
		fault.StepAfterStart + ":3",  // etcd 3.6's readiness write and snapshot
	}
	for _, point := range points {
		cases.Run(t, strings.ReplaceAll(point, ":", "#"), func(t *testing.T) {
			fsDir := mountTmpfs(t, fsMiB)
			dataDir := extractInto(t, fsDir)
			filler := filepath.Join(fsDir, "filler")
			r := runMigrate(t, binDir, dataDir, []string{fault.FillEnv + "=" + point + "@" + filler}, "--target-version=3.7.3", "--exec=false")
			if _, err := os.Stat(filler); err != nil {
				t.Fatalf("the fill point %s was not reached (exit %d)\n%s", point, r.code, r.stderr)
			}
			// A backup that fails has touched nothing: exit 2, like any refusal
			// before the steps; a step cut short is a failed step: exit 1.
			wantCode := 1
			if point == fault.BackupBeforeCopy {
				wantCode = 2
			}
			if r.code != wantCode {
				t.Fatalf("exit %d with the disk full at %s, want %d\n%s", r.code, point, wantCode, r.stderr)
			}
			line := errorLine(t, r)
			// Our own writes fail with the path and ENOSPC; a step's etcd dies with
			// its own message, to which the step adds the free space it found.
			if !strings.Contains(line, "no space left on device") && !strings.Contains(line, "MiB free, about 64 MiB needed") {
				t.Fatalf("the error line should name the full disk: %q", line)
			}
			if !strings.Contains(line, fsDir) {
				t.Fatalf("the error line should name a path on the full file system %s: %q", fsDir, line)
			}
			// version.txt is intact and agrees with the data (as the next run sees it).
			recorded, err := versionfile.Read(dataDir)
			if err != nil {
				t.Fatalf("version.txt after ENOSPC: %v", err)
			}
			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			if _, err := memberdir.Recover(dataDir); err != nil {
				t.Fatal(err)
			}
			if _, err := migrate.Inspect(dataDir); err != nil {
				t.Fatalf("version.txt %s and the data disagree after ENOSPC: %v", recorded, err)
			}
			// The data serves with the etcd version.txt names; or, when the step's
			// etcd got as far as moving the cluster or storage version on before
			// the disk filled (the data is one minor ahead of version.txt, in the
			// backend or only in the WAL; the next run completes that step), with
			// that newer etcd: the older one refuses the data ("invalid downgrade").
			serveAs := recorded
			if recorded.Storage == versionfile.StorageEtcd3 && !etcdtest.Serves(t, binDir, recorded.Version.String(), dataDir) {
				serveAs = versionfile.Pair{Version: nextBundled(t, recorded), Storage: versionfile.StorageEtcd3}
				t.Logf("etcd %s refuses the data, which the cut-short step moved one minor ahead: served with %s", recorded.Version, serveAs.Version)
			}
			if serveAs.Storage == versionfile.StorageEtcd2 {
				s := etcdtest.ServeV2(t, binDir, serveAs.Version.String(), etcdtest.CopyDir(t, dataDir))
				if n := len(etcdtest.DumpV2(t, s.ClientURL)); n < 300 {
					t.Fatalf("etcd %s serves %d v2 nodes, want >= 300", serveAs, n)
				}
				s.Stop()
			} else {
				s := etcdtest.Serve(t, binDir, serveAs.Version.String(), etcdtest.CopyDir(t, dataDir))
				got := s.DumpAll(t)
				s.Stop()
				// A step cut short between its readiness write's lease grant and
				// revoke leaves that lease, with no keys; the rerun's first step
				// revokes it (checked after the rerun).
				for id, keys := range got.Leases {
					if len(keys) == 0 {
						delete(got.Leases, id)
					}
				}
				if diffs := etcdtest.Compare(want, got, 10); len(diffs) > 0 {
					t.Fatalf("etcd %s serves a different keyspace:\n%s", serveAs, strings.Join(diffs, "\n"))
				}
			}
			r = runMigrate(t, binDir, dataDir, nil, "--target-version=3.7.3", "--exec=false")
			if r.code != 0 {
				t.Fatalf("rerun after freeing space: exit %d\n%s", r.code, r.stderr)
			}
			assertServedKeyspace(t, binDir, "3.7.3", dataDir, want, "after ENOSPC at "+point)
			t.Logf("ENOSPC at %s: %s; version.txt stayed %s; rerun completed", point, line, recorded)
		})
	}

	// A full disk after the last step's etcd stopped: version.txt's update was
	// written (and fsynced) before the step began, so only a rename is left, which
	// needs no space: the run completes.
	cases.Run(t, "full-after-last-step", func(t *testing.T) {
		fsDir := mountTmpfs(t, fsMiB)
		dataDir := extractInto(t, fsDir)
		filler := filepath.Join(fsDir, "filler")
		r := runMigrate(t, binDir, dataDir, []string{fault.FillEnv + "=" + fault.StepAfterStop + ":4@" + filler}, "--target-version=3.7.3", "--exec=false")
		if _, err := os.Stat(filler); err != nil || r.code != 0 {
			t.Fatalf("exit %d (filler: %v), want 0 with the disk filled after the 3.7 step\n%s", r.code, err, r.stderr)
		}
		if got := readVersionTxt(t, dataDir); got != "3.7.3/etcd3\n" {
			t.Fatalf("version.txt = %q", got)
		}
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		assertServedKeyspace(t, binDir, "3.7.3", dataDir, want, "disk full after the last step")
	})

	cases.Run(t, "too-small-to-start", func(t *testing.T) {
		fsDir := mountTmpfs(t, 100)
		dataDir := extractInto(t, fsDir)
		sum := etcdtest.Checksum(t, dataDir)
		r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.7.3", "--exec=false")
		line := errorLine(t, r)
		if r.code != 2 || !strings.Contains(line, "not enough disk space in "+dataDir) || !strings.Contains(line, "MiB are free") {
			t.Fatalf("exit %d, error %q; want exit 2 naming %s and the space needed", r.code, line, dataDir)
		}
		if got := etcdtest.Checksum(t, dataDir); got != sum {
			t.Fatal("the data dir changed")
		}
	})
}

// caseTally counts subtests by what they did. t.Run returns true for a skipped
// subtest as for a passed one, so a skip is told apart by the subtest's own
// t.Skipped, and is never counted as run or passed.
type caseTally struct {
	run, passed, skipped int
	skipReason           string // the first skip's reason, when it gave one
}

// Run runs f as the subtest name and counts it: skipped, or run and passed, or run
// and failed.
func (c *caseTally) Run(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	var skipped bool
	ok := t.Run(name, func(t *testing.T) {
		// Runs when f returns, and on t.Fatal and t.Skip (both end the
		// subtest's goroutine through its deferred calls).
		defer func() { skipped = t.Skipped() }()
		f(t)
	})
	if skipped {
		c.skipped++
		if c.skipReason == "" {
			c.skipReason = lastTmpfsSkip()
		}
		return
	}
	c.run++
	if ok {
		c.passed++
	}
}

// String is the summary: "7 run, 7 passed, 0 skipped", and why cases skipped.
func (c *caseTally) String() string {
	s := fmt.Sprintf("%d run, %d passed, %d skipped", c.run, c.passed, c.skipped)
	if c.skipReason != "" {
		s += "; skipped: " + c.skipReason
	}
	return s
}

// extractInto unpacks the etcd2 fixture into dir/data keeping its sparse WAL files
// sparse (a plain copy would write their 64 MiB).
func extractInto(t *testing.T, dir string) string {
	t.Helper()
	dataDir := filepath.Join(dir, "data")
	if err := os.Mkdir(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("tar", "-xzf", filepath.Join(etcdtest.RepoRoot(), "testdata", fixtureEtcd2), "-C", dataDir).CombinedOutput()
	if err != nil {
		t.Fatalf("extract: %v: %s", err, out)
	}
	return dataDir
}

// nextBundled is the bundled version one minor above p's.
func nextBundled(t *testing.T, p versionfile.Pair) *version.Version {
	t.Helper()
	for _, s := range strings.Split(etcdtest.Bundled, ",") {
		v := version.Must(version.NewVersion(s))
		if v.Segments()[0] == p.Version.Segments()[0] && v.Segments()[1] == p.Version.Segments()[1]+1 {
			return v
		}
	}
	t.Fatalf("no bundled version one minor above %s", p)
	return nil
}
