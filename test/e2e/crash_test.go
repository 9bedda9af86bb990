package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/pkg/fault"
	"github.com/etcd-migrate/etcd-migrate/pkg/memberdir"
	"github.com/etcd-migrate/etcd-migrate/pkg/migrate"
)

// The crash suite kills migrate (SIGKILL; its child etcd dies with it) at every
// fault injection point and at random times during two runs, then reruns it with
// the same target and checks that it converges to exactly the keyspace of an
// uninterrupted run, and that right after each kill version.txt names a state the
// data is in. Its size: ETCD_MIGRATE_CRASH_KILLS random-time kills (default 50, for
// CI; `make test-crash CRASH_KILLS=300` for a larger run) and every injection point
// at its first and second occurrence (CRASH_OCCURRENCES, default 2).
//
//   - up:   3.4.13/etcd2 (the committed fixture) -> 3.7.3/etcd3: the v2 -> v3
//     conversion, then the 3.5, 3.6 and 3.7 steps.
//   - down: 3.7.3/etcd3 (the etcd3 fixture walked up) -> 3.4.13/etcd2: the 3.7 -> 3.6 and
//     3.6 -> 3.5 downgrades, the 3.5 -> 3.4 snapshot restore and the v3 -> v2
//     conversion.

type crashScenario struct {
	name   string
	start  string // data dir to copy for each run
	target []string
	// check compares the data dir a run converged to with the uninterrupted run's.
	check func(t *testing.T, dataDir string) (lost int)
	// duration of an uninterrupted run: random kills fall within it.
	duration time.Duration
}

type crashTally struct {
	mu                             sync.Mutex
	injected, survived, notReached int
	random, lost                   int
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n >= 0 {
		return n
	}
	return def
}

func TestCrashSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("the crash suite runs hundreds of migrations; skipped with -short")
	}
	binDir := etcdtest.BinDir(t)
	kills := envInt("ETCD_MIGRATE_CRASH_KILLS", 50)
	occurrences := envInt("ETCD_MIGRATE_CRASH_OCCURRENCES", 2)

	// The uninterrupted runs and their keyspaces.
	pristine := etcdtest.ExtractFixture(t, fixtureEtcd2)
	upDir := etcdtest.CopyDir(t, pristine)
	start := time.Now()
	if r := runMigrate(t, binDir, upDir, nil, "--target-version=3.7.3", "--exec=false"); r.code != 0 {
		t.Fatalf("uninterrupted up: exit %d\n%s", r.code, r.stderr)
	}
	upTime := time.Since(start)
	s := etcdtest.Serve(t, binDir, "3.7.3", etcdtest.CopyDir(t, upDir))
	upWant := s.DumpAll(t)
	s.Stop()
	// The etcd2 fixture holds a non-JSON value on purpose, which etcd2 cannot take
	// back: the rollback starts from the etcd3 fixture walked to 3.7.3.
	downStart := etcdtest.CopyDir(t, etcdtest.ExtractFixture(t, fixture34))
	if r := runMigrate(t, binDir, downStart, nil, "--target-version=3.7.3", "--exec=false"); r.code != 0 {
		t.Fatalf("walk the etcd3 fixture to 3.7.3: exit %d\n%s", r.code, r.stderr)
	}
	downDir := etcdtest.CopyDir(t, downStart)
	start = time.Now()
	if r := runMigrate(t, binDir, downDir, nil, "--target-version=3.4.13", "--target-storage=etcd2", "--exec=false"); r.code != 0 {
		t.Fatalf("uninterrupted down: exit %d\n%s", r.code, r.stderr)
	}
	downTime := time.Since(start)
	s = etcdtest.ServeV2(t, binDir, "3.4.13", etcdtest.CopyDir(t, downDir))
	downWant := etcdtest.DumpV2(t, s.ClientURL)
	s.Stop()
	if len(upWant.Keys) < 300 || len(downWant) < 300 {
		t.Fatalf("reference runs hold %d (v3) and %d (v2) keys, want >= 300", len(upWant.Keys), len(downWant))
	}
	t.Logf("uninterrupted: up %v, down %v; %d keys", upTime.Round(time.Millisecond), downTime.Round(time.Millisecond), len(upWant.Keys))

	scenarios := []*crashScenario{
		{name: "up", start: pristine, target: []string{"--target-version=3.7.3"}, duration: upTime,
			check: func(t *testing.T, dataDir string) int {
				s := etcdtest.Serve(t, binDir, "3.7.3", dataDir)
				got := s.DumpAll(t)
				s.Stop()
				if diffs := etcdtest.Compare(upWant, got, 10); len(diffs) > 0 {
					t.Errorf("keyspace differs from the uninterrupted run:\n%s", strings.Join(diffs, "\n"))
				}
				return missing(upWant.Keys, got.Keys)
			}},
		{name: "down", start: downStart, target: []string{"--target-version=3.4.13", "--target-storage=etcd2"}, duration: downTime,
			check: func(t *testing.T, dataDir string) int {
				s := etcdtest.ServeV2(t, binDir, "3.4.13", dataDir)
				got := etcdtest.DumpV2(t, s.ClientURL)
				s.Stop()
				if diffs := compareV2(downWant, got); len(diffs) > 0 {
					t.Errorf("v2 keyspace differs from the uninterrupted run:\n%s", strings.Join(diffs, "\n"))
				}
				return missing(downWant, got)
			}},
	}

	type crashCase struct {
		sc    *crashScenario
		fault string        // injection point, or ""
		after time.Duration // random-time kill
	}
	var cases []crashCase
	for _, sc := range scenarios {
		for _, p := range fault.Points {
			for n := 1; n <= occurrences; n++ {
				cases = append(cases, crashCase{sc: sc, fault: fmt.Sprintf("%s:%d", p, n)})
			}
		}
	}
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for i := 0; i < kills; i++ {
		// Kills in proportion to the runs' lengths would starve the short one.
		sc := scenarios[i%len(scenarios)]
		cases = append(cases, crashCase{sc: sc, after: time.Duration(rng.Int63n(int64(sc.duration)))})
	}

	// The runs mostly wait on etcd (the downgrade monitors, raft timers), so they go
	// several at a time whatever -parallel says (t.Run may be called from several
	// goroutines).
	tally := &crashTally{}
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < envInt("ETCD_MIGRATE_CRASH_PARALLEL", 4); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				c := cases[i]
				name := fmt.Sprintf("%s/%s", c.sc.name, c.fault)
				if c.fault == "" {
					name = fmt.Sprintf("%s/random-%d-at-%v", c.sc.name, i, c.after.Round(time.Millisecond))
				}
				t.Run(name, func(t *testing.T) { crashOnce(t, binDir, c.sc, c.fault, c.after, tally) })
			}
		}()
	}
	for i := range cases {
		work <- i
	}
	close(work)
	wg.Wait()
	total := tally.injected + tally.random
	etcdtest.Report(t, "crash", fmt.Sprintf("crash suite: kills survived %d/%d (%d at injection points, %d at random times; %d point occurrences not reached); keys lost %d",
		tally.survived, total, tally.injected, tally.random, tally.notReached, tally.lost))
	if tally.survived != total || tally.lost != 0 {
		t.Fatalf("survived %d of %d kills, %d keys lost", tally.survived, total, tally.lost)
	}
}

// crashOnce runs one kill and the rerun after it.
func crashOnce(t *testing.T, binDir string, sc *crashScenario, point string, after time.Duration, tally *crashTally) {
	dataDir := etcdtest.CopyDir(t, sc.start)
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
	var ee *exec.ExitError
	killed := errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled()
	switch {
	case killed:
	case err == nil && point != "":
		tally.mu.Lock()
		tally.notReached++
		tally.mu.Unlock()
		t.Logf("%s not reached by this run", point)
		return
	case err == nil:
		t.Logf("the run finished before the kill at %v", after)
		return
	default:
		t.Fatalf("run failed instead of being killed: %v\n%s", err, log.String())
	}
	tally.mu.Lock()
	if point != "" {
		tally.injected++
	} else {
		tally.random++
	}
	tally.mu.Unlock()
	etcdtest.WaitChildrenGone(t, dataDir, 5*time.Second)

	// Right after the kill, version.txt must agree with the data as any run sees it
	// first (after settling an interrupted member dir swap): checked on a copy, so
	// the rerun starts from the data exactly as the kill left it.
	probe := etcdtest.CopyDir(t, dataDir)
	if _, err := memberdir.Recover(probe); err != nil {
		t.Fatalf("after the kill: recover: %v", err)
	}
	if _, err := migrate.Inspect(probe); err != nil {
		t.Fatalf("after the kill, version.txt and the data disagree: %v\nkilled run's log:\n%s", err, log.String())
	}

	r := runMigrate(t, binDir, dataDir, nil, args...)
	if r.code != 0 {
		t.Fatalf("rerun: exit %d\n%s\nkilled run's log:\n%s", r.code, r.stderr, log.String())
	}
	lost := sc.check(t, dataDir)
	tally.mu.Lock()
	tally.lost += lost
	if !t.Failed() {
		tally.survived++
	}
	tally.mu.Unlock()
}

// missing counts the keys of want that got lacks.
func missing[V any](want, got map[string]V) int {
	n := 0
	for k := range want {
		if _, ok := got[k]; !ok {
			n++
		}
	}
	return n
}

// compareV2 compares two v2 keyspaces: values, indexes, dirs, and TTLs to within
// the time between the two dumps.
func compareV2(want, got map[string]etcdtest.V2Node) []string {
	var diffs []string
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("key %q lost", k))
		case g.Value != w.Value || g.Dir != w.Dir || g.CreatedIndex != w.CreatedIndex || g.ModifiedIndex != w.ModifiedIndex:
			diffs = append(diffs, fmt.Sprintf("key %q: want %+v, got %+v", k, w, g))
		case (w.TTL > 0) != (g.TTL > 0) || g.TTL > w.TTL+300 || g.TTL < w.TTL-300:
			diffs = append(diffs, fmt.Sprintf("key %q: TTL %d, want about %d", k, g.TTL, w.TTL))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("key %q appeared", k))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 10 {
		diffs = diffs[:10]
	}
	return diffs
}
