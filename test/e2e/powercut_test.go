//go:build linux

package e2e

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/internal/powercut"
	"github.com/etcd-migrate/etcd-migrate/pkg/backup"
	"github.com/etcd-migrate/etcd-migrate/pkg/fault"
	"github.com/etcd-migrate/etcd-migrate/pkg/memberdir"
	"github.com/etcd-migrate/etcd-migrate/pkg/migrate"
)

// The power-cut suite: migrate and every etcd it starts run on internal/powercut's
// file system (the data dir, its backup and record beside it, all on the mount),
// which forgets on a cut every write, create, rename and unlink not made durable
// (strict POSIX: a file's data after its fsync, a name after its directory's). A
// round kills migrate at a named crash point of pkg/fault (or at a random instant)
// and cuts the power at that instant; the machine "reboots" (a remount of what was
// durable) and migrate reruns to the end. Each round must end with: exit 0; the
// target etcd serving every key, revision and lease (with its TTL) of the data
// before the migration; version.txt, right after the reboot, naming the state the
// data is in; the backup complete (the pre-migration data byte for byte, its record
// completed).
//
//   - walk: 3.4.13/etcd3 (the committed fixture) -> 3.7.3: backup, three steps,
//     version.txt after each. Reference: the fixture as etcd 3.4.13 serves it.
//   - up:   3.4.13/etcd2 (the committed fixture) -> 3.7.3: the v2 -> v3 conversion
//     and its member dir swap. Reference: the uninterrupted run's keyspace (the
//     conversion maps v2 nodes to v3 keys; the crash suite's reference).
//   - down: 3.7.3/etcd3 -> 3.4.13/etcd2: downgrades, the 3.5 -> 3.4 snapshot
//     restore, the v3 -> v2 conversion. Reference: the uninterrupted run's v2
//     keyspace.
//   - binaries: DO_NOT_MOVE_BINARIES unset, --bin-dir on the mount: migrate copies
//     etcd-3.7.3/etcdctl-3.7.3 to etcd/etcdctl and is cut before the exec; after the
//     reboot etcd and etcdctl must be the bundled binaries it logged as copied.
//
// ETCD_MIGRATE_POWERCUT_RANDOM (default 30) rounds cut the three runs at random
// instants (in turn; within an uninterrupted run's time on the mount);
// ETCD_MIGRATE_POWERCUT_PARALLEL (default 2) rounds run at a time.

type pcScenario struct {
	name   string
	start  string // data dir each round copies onto the file system
	target []string
	want   string // version.txt after the run
	before string // version.txt of start: the backup's
	points []string
	check  func(t *testing.T, dataDir string) (lost int)
	// duration of an uninterrupted run on the mount: random cuts fall within it.
	duration time.Duration
}

type pcTally struct {
	mu                             sync.Mutex
	rounds, survived, lost, random int
	notReached                     int
}

func TestPowerCut(t *testing.T) {
	if testing.Short() {
		t.Skip("the power-cut suite runs dozens of migrations; skipped with -short")
	}
	if err := powercut.Available(); err != nil {
		etcdtest.Report(t, "powercut", fmt.Sprintf("power cuts: not run, skipped: FUSE cannot be mounted here: %v", err))
		t.Skipf("FUSE cannot be mounted here, so the power-cut suite cannot run: %v", err)
	}
	binDir := etcdtest.BinDir(t)

	// walk: the reference is the data before the migration as a real etcd serves it.
	walkStart := etcdtest.ExtractFixture(t, fixture34)
	s := etcdtest.Serve(t, binDir, "3.4.13", etcdtest.CopyDir(t, walkStart))
	walkWant := s.DumpAll(t)
	s.Stop()
	// up and down: the uninterrupted runs.
	upStart := etcdtest.ExtractFixture(t, fixtureEtcd2)
	upDir := etcdtest.CopyDir(t, upStart)
	if r := runMigrate(t, binDir, upDir, nil, "--target-version=3.7.3", "--exec=false"); r.code != 0 {
		t.Fatalf("uninterrupted up: exit %d\n%s", r.code, r.stderr)
	}
	s = etcdtest.Serve(t, binDir, "3.7.3", upDir)
	upWant := s.DumpAll(t)
	s.Stop()
	downStart := etcdtest.CopyDir(t, walkStart)
	if r := runMigrate(t, binDir, downStart, nil, "--target-version=3.7.3", "--exec=false"); r.code != 0 {
		t.Fatalf("walk the etcd3 fixture to 3.7.3: exit %d\n%s", r.code, r.stderr)
	}
	// The walked data's backup and record are not part of the rollback's start.
	for _, p := range []string{backup.Path(downStart), backup.RecordPath(downStart)} {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
	downDir := etcdtest.CopyDir(t, downStart)
	if r := runMigrate(t, binDir, downDir, nil, "--target-version=3.4.13", "--target-storage=etcd2", "--exec=false"); r.code != 0 {
		t.Fatalf("uninterrupted down: exit %d\n%s", r.code, r.stderr)
	}
	s = etcdtest.ServeV2(t, binDir, "3.4.13", downDir)
	downWant := etcdtest.DumpV2(t, s.ClientURL)
	s.Stop()
	if len(walkWant.Keys) < 300 || len(upWant.Keys) < 300 || len(downWant) < 300 {
		t.Fatalf("references hold %d, %d (v3) and %d (v2) keys, want >= 300", len(walkWant.Keys), len(upWant.Keys), len(downWant))
	}

	v3check := func(want etcdtest.Dump) func(t *testing.T, dataDir string) int {
		return func(t *testing.T, dataDir string) int {
			s := etcdtest.Serve(t, binDir, "3.7.3", dataDir)
			got := s.DumpAll(t)
			s.Stop()
			diffs, lost := keptAll(want, got)
			if len(diffs) > 0 {
				t.Errorf("after the power cut and the rerun, etcd 3.7.3 does not serve the data as before:\n%s", strings.Join(diffs, "\n"))
			}
			return lost
		}
	}
	walk := &pcScenario{name: "walk", start: walkStart, target: []string{"--target-version=3.7.3"},
		want: "3.7.3/etcd3", before: "3.4.13/etcd3", check: v3check(walkWant),
		points: []string{
			fault.BackupBeforeCopy, fault.BackupAfterCopy, fault.BackupAfterRename,
			fault.StepBeforeStart, fault.StepAfterStart, fault.StepBeforeStop, fault.StepAfterStop,
			fault.StepAfterStop + ":2", fault.StepBeforeStop + ":3",
			fault.VersionAfterTemp, fault.VersionAfterSync, fault.VersionAfterRename,
			fault.VersionAfterRename + ":2", fault.VersionAfterRename + ":3",
		}}
	up := &pcScenario{name: "up", start: upStart, target: []string{"--target-version=3.7.3"},
		want: "3.7.3/etcd3", before: "3.4.13/etcd2", check: v3check(upWant),
		points: []string{
			fault.BackupAfterRename, fault.ConvertMidWrite, fault.ConvertBeforeSwap, fault.MemberDirMidSwap,
			fault.VersionAfterRename, fault.StepAfterStop,
		}}
	down := &pcScenario{name: "down", start: downStart, target: []string{"--target-version=3.4.13", "--target-storage=etcd2"},
		want: "3.4.13/etcd2", before: "3.7.3/etcd3",
		check: func(t *testing.T, dataDir string) int {
			s := etcdtest.ServeV2(t, binDir, "3.4.13", dataDir)
			got := etcdtest.DumpV2(t, s.ClientURL)
			s.Stop()
			if diffs := compareV2(downWant, got); len(diffs) > 0 {
				t.Errorf("after the power cut and the rerun, the v2 keyspace differs from the uninterrupted run's:\n%s", strings.Join(diffs, "\n"))
			}
			return missing(downWant, got)
		},
		points: []string{
			fault.BackupAfterRename, fault.StepBeforeStop, fault.StepAfterStop,
			fault.VersionAfterRename, fault.VersionAfterRename + ":2",
			fault.RestoreRunning, fault.MemberDirMidSwap, fault.VersionAfterRename + ":3",
			fault.RollbackMidWrite, fault.RollbackBeforeSwap, fault.MemberDirMidSwap + ":2",
		}}

	// Every named point is cut at in some scenario.
	covered := map[string]bool{}
	for _, sc := range []*pcScenario{walk, up, down} {
		for _, p := range sc.points {
			covered[strings.SplitN(p, ":", 2)[0]] = true
		}
	}
	for _, p := range fault.Points {
		if !covered[p] {
			t.Errorf("no power-cut round at %s", p)
		}
	}

	type round struct {
		sc    *pcScenario
		point string
		after time.Duration
		bins  bool
	}
	var rounds []round
	for _, sc := range []*pcScenario{walk, up, down} {
		for _, p := range sc.points {
			if !strings.Contains(p, ":") {
				p += ":1"
			}
			rounds = append(rounds, round{sc: sc, point: p})
		}
	}
	rounds = append(rounds, round{sc: down, bins: true})
	if n := envInt("ETCD_MIGRATE_POWERCUT_RANDOM", 30); n > 0 {
		scs := []*pcScenario{walk, up, down}
		for _, sc := range scs {
			sc.duration = timeOnMount(t, binDir, sc)
		}
		rng := rand.New(rand.NewSource(time.Now().UnixNano()))
		for i := 0; i < n; i++ {
			sc := scs[i%len(scs)]
			rounds = append(rounds, round{sc: sc, after: time.Duration(rng.Int63n(int64(sc.duration)))})
		}
	}

	tally := &pcTally{}
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < envInt("ETCD_MIGRATE_POWERCUT_PARALLEL", 2); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				r := rounds[i]
				name := fmt.Sprintf("%s/%s", r.sc.name, r.point)
				switch {
				case r.bins:
					name = "binaries/" + fault.BeforeExec
				case r.point == "":
					name = fmt.Sprintf("%s/random-%d-at-%v", r.sc.name, i, r.after.Round(time.Millisecond))
				}
				t.Run(name, func(t *testing.T) {
					if r.bins {
						powerCutBinaries(t, binDir, r.sc, tally)
						return
					}
					powerCutOnce(t, binDir, r.sc, r.point, r.after, tally)
				})
			}
		}()
	}
	for i := range rounds {
		work <- i
	}
	close(work)
	wg.Wait()
	etcdtest.Report(t, "powercut", fmt.Sprintf("power cuts %d/%d survived, %d keys lost (%d at named crash points, %d at random instants; %d rounds' cut came after the run ended and are not counted)",
		tally.survived, tally.rounds, tally.lost, tally.rounds-tally.random, tally.random, tally.notReached))
	if tally.survived != tally.rounds || tally.lost != 0 || tally.rounds == 0 {
		t.Fatalf("survived %d of %d power cuts, %d keys lost", tally.survived, tally.rounds, tally.lost)
	}
}

// keptAll checks that got holds every key of want as it was (value, create and mod
// revision, version, lease) and every lease with its keys and granted TTL, and no
// older store revision. It returns the differences (at most 10) and the keys lost.
func keptAll(want, got etcdtest.Dump) (diffs []string, lost int) {
	add := func(format string, a ...any) {
		if len(diffs) < 10 {
			diffs = append(diffs, fmt.Sprintf(format, a...))
		}
	}
	if got.Revision < want.Revision {
		add("store revision %d, before the migration %d", got.Revision, want.Revision)
	}
	for k, w := range want.Keys {
		g, ok := got.Keys[k]
		switch {
		case !ok:
			lost++
			add("key %q lost", k)
		case g != w:
			lost++
			add("key %q: want create=%d mod=%d ver=%d lease=%x len=%d, got create=%d mod=%d ver=%d lease=%x len=%d", k,
				w.CreateRevision, w.ModRevision, w.Version, w.Lease, len(w.Value), g.CreateRevision, g.ModRevision, g.Version, g.Lease, len(g.Value))
		}
	}
	for id, wk := range want.Leases {
		gk, ok := got.Leases[id]
		switch {
		case !ok:
			add("lease %x lost", id)
		case strings.Join(wk, ",") != strings.Join(gk, ","):
			add("lease %x keys: want %d, got %d", id, len(wk), len(gk))
		case want.LeaseTTL[id] != got.LeaseTTL[id]:
			add("lease %x granted TTL %d, want %d", id, got.LeaseTTL[id], want.LeaseTTL[id])
		}
	}
	return diffs, lost
}

// onMount copies start to <backing>/data and mounts backing; the data dir is
// <mount>/data.
func onMount(t *testing.T, start string) (fsys *powercut.FS, backing, dataDir string) {
	t.Helper()
	base := t.TempDir()
	backing, mnt := filepath.Join(base, "disk"), filepath.Join(base, "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("cp", "-a", "--sparse=always", start, filepath.Join(backing, "data")).CombinedOutput(); err != nil {
		t.Fatalf("copy %s: %v: %s", start, err, out)
	}
	return mountAgain(t, backing, mnt), backing, filepath.Join(mnt, "data")
}

func mountAgain(t *testing.T, backing, mnt string) *powercut.FS {
	t.Helper()
	fsys, err := powercut.Mount(backing, mnt)
	if err != nil {
		t.Fatalf("mount the power-cut file system: %v", err)
	}
	t.Cleanup(func() { _ = fsys.Cut() })
	return fsys
}

// timeOnMount times an uninterrupted run of sc on the mount.
func timeOnMount(t *testing.T, binDir string, sc *pcScenario) time.Duration {
	fsys, _, dataDir := onMount(t, sc.start)
	start := time.Now()
	if r := runMigrate(t, binDir, dataDir, nil, append(append([]string{}, sc.target...), "--exec=false")...); r.code != 0 {
		t.Fatalf("uninterrupted %s on the mount: exit %d\n%s", sc.name, r.code, r.stderr)
	}
	d := time.Since(start)
	if err := fsys.Cut(); err != nil {
		t.Fatal(err)
	}
	t.Logf("uninterrupted %s on the power-cut file system: %v", sc.name, d.Round(time.Millisecond))
	return d
}

// powerCutOnce runs one round: a run killed at point (or after a random time) with
// the power cut at that instant, the reboot, the rerun and the checks.
func powerCutOnce(t *testing.T, binDir string, sc *pcScenario, point string, after time.Duration, tally *pcTally) {
	fsys, backing, dataDir := onMount(t, sc.start)
	args := append(append([]string{}, sc.target...), "--exec=false")
	var env []string
	if point != "" {
		env = []string{fault.Env + "=" + point}
	}
	cmd := migrateCmd(t, binDir, dataDir, env, args...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if point == "" {
		timer := time.AfterFunc(after, func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
		defer timer.Stop()
	}
	err := cmd.Wait()
	fsys.Freeze() // the power goes now: no fsync after this instant counts
	var ee *exec.ExitError
	killed := errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled()
	switch {
	case killed:
	case err == nil && point != "":
		tally.mu.Lock()
		tally.notReached++
		tally.mu.Unlock()
		t.Fatalf("%s not reached by this run: the round proves nothing\n%s", point, log.String())
	case err == nil:
		tally.mu.Lock()
		tally.notReached++
		tally.mu.Unlock()
		t.Logf("the run ended before the cut at %v: not counted", after)
		return
	default:
		t.Fatalf("run failed instead of being killed: %v\n%s", err, log.String())
	}
	tally.mu.Lock()
	tally.rounds++
	if point == "" {
		tally.random++
	}
	tally.mu.Unlock()
	etcdtest.WaitChildrenGone(t, dataDir, 5*time.Second)
	if err := fsys.Cut(); err != nil {
		t.Fatalf("power cut: %v", err)
	}
	st := fsys.Stats()
	t.Logf("cut after %d file and %d directory fsyncs", st.FileSyncs, st.DirSyncs)

	// After the reboot, before any run: version.txt agrees with the data as any run
	// sees it first (after settling an interrupted member dir swap). On a copy.
	probe := etcdtest.CopyDir(t, filepath.Join(backing, "data"))
	if _, err := memberdir.Recover(probe); err != nil {
		t.Fatalf("after the power cut: recover: %v\nkilled run's log:\n%s", err, log.String())
	}
	if _, err := migrate.Inspect(probe); err != nil {
		t.Fatalf("after the power cut, version.txt and the data disagree: %v\nkilled run's log:\n%s", err, log.String())
	}

	fsys = mountAgain(t, backing, filepath.Dir(dataDir))
	r := runMigrate(t, binDir, dataDir, nil, args...)
	if r.code != 0 {
		t.Fatalf("rerun after the power cut: exit %d\n%s\nkilled run's log:\n%s", r.code, r.stderr, log.String())
	}
	if err := fsys.Unmount(); err != nil { // a clean shutdown
		t.Fatal(err)
	}
	data := filepath.Join(backing, "data")
	if got := readVersionTxt(t, data); strings.TrimSpace(got) != sc.want {
		t.Errorf("version.txt after the rerun: %q, want %s", got, sc.want)
	}
	lost := sc.check(t, data)
	checkBackup(t, sc, data)
	tally.mu.Lock()
	tally.lost += lost
	if !t.Failed() {
		tally.survived++
	}
	tally.mu.Unlock()
}

// checkBackup: the backup is the pre-migration data byte for byte, its record
// completed.
func checkBackup(t *testing.T, sc *pcScenario, data string) {
	t.Helper()
	b := backup.Inspect(data)
	switch {
	case !b.Exists:
		t.Errorf("no backup at %s", b.Path)
	case b.Record == nil:
		t.Errorf("the backup has no readable record: %v", b.RecordErr)
	case b.Record.Before != sc.before || !b.Record.Completed:
		t.Errorf("backup record: before %q completed %v, want %q completed", b.Record.Before, b.Record.Completed, sc.before)
	default:
		if got, want := etcdtest.Checksum(t, b.Path), etcdtest.Checksum(t, sc.start); got != want {
			t.Errorf("the backup %s is not the data before the migration", b.Path)
		}
	}
}

// powerCutBinaries: with DO_NOT_MOVE_BINARIES unset and --bin-dir on the mount,
// migrate copies etcd-<target> and etcdctl-<target> to etcd and etcdctl; the power
// goes just before the exec. After the reboot both must be the bundled binaries.
func powerCutBinaries(t *testing.T, binDir string, sc *pcScenario, tally *pcTally) {
	fsys, backing, dataDir := onMount(t, sc.start)
	mnt := filepath.Dir(dataDir)
	bin := filepath.Join(mnt, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"etcd-3.7.3", "etcdctl-3.7.3"} {
		if err := copyExecutable(filepath.Join(binDir, n), filepath.Join(bin, n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := fsys.Sync(); err != nil { // the image's binaries are there before the run
		t.Fatal(err)
	}
	// A no-op run (the data is at 3.7.3): migrate copies the binaries, then execs.
	cmd := migrateCmd(t, binDir, dataDir, []string{"DO_NOT_MOVE_BINARIES=false", fault.Env + "=" + fault.BeforeExec},
		"--bin-dir="+bin, "--bundled-versions=3.7.3", "--target-version=3.7.3")
	out, err := cmd.CombinedOutput()
	fsys.Freeze()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() {
		t.Fatalf("run not killed before the exec: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "copied bundled binary") {
		t.Fatalf("the run copied no binary:\n%s", out)
	}
	tally.mu.Lock()
	tally.rounds++
	tally.mu.Unlock()
	etcdtest.WaitChildrenGone(t, dataDir, 5*time.Second)
	if err := fsys.Cut(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"etcd", "etcdctl"} {
		got, want := fileSum(filepath.Join(backing, "bin", n)), fileSum(filepath.Join(binDir, n+"-3.7.3"))
		if got != want {
			t.Errorf("after the power cut, %s in the bin dir is %s, not %s-3.7.3 (which the run logged as copied)", n, got, n)
		}
	}
	tally.mu.Lock()
	if !t.Failed() {
		tally.survived++
	}
	tally.mu.Unlock()
}

func copyExecutable(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}

// fileSum is a file's sha256, or what is wrong with it.
func fileSum(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "missing (" + err.Error() + ")"
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%d bytes, sha256 %x", n, h.Sum(nil)[:8])
}
