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
// the same target and checks that it converges to the keyspace of the fixture it
// started from as the etcd that wrote it (3.4.13) serves it, not to what migrate's
// own uninterrupted run leaves (which would hide a loss both share), and that right
// after each kill version.txt names a state the data is in. Its size:
// ETCD_MIGRATE_CRASH_KILLS random-time kills (default 50, for CI; `make test-crash
// CRASH_KILLS=300` for a larger run) and every injection point at its first and
// second occurrence (CRASH_OCCURRENCES, default 2).
//
// What it counts: a kill is counted only when it landed during the run (migrate
// died of the SIGKILL). A point occurrence a run does not pass (the down run has no
// v2 -> v3 conversion, a backup happens once) and a random kill that fired after
// the run had ended are not counted, and the summary says how many there were.
// Floor: every named injection point (fault.Points) must have been reached by at
// least one kill in one of the two runs, or the suite fails naming the points no
// kill reached (a point that moved or vanished would otherwise pass unnoticed).
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
	// check compares the data dir a rerun converged to with the fixture's keyspace
	// (the reference). It sets *lost to the number of reference keys the data
	// lacks before it fails t on any difference. since is when the killed run
	// started: the conversion that set TTLs came after it.
	check func(t *testing.T, dataDir string, since time.Time, lost *int)
	// duration of an uninterrupted run: random kills fall within it.
	duration time.Duration
}

type crashTally struct {
	mu                             sync.Mutex
	injected, survived, notReached int
	// random counts the random kills that landed during the run; randomLate those
	// whose timer fired after the run had ended (not counted as kills).
	random, randomLate, lost int
	// reached counts the kills that landed at each named injection point.
	reached map[string]int
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

	// The references: each fixture's keyspace as the etcd that wrote it (3.4.13)
	// serves it, before any migration.
	pristine := etcdtest.ExtractFixture(t, fixtureEtcd2)
	upRef := v2Baseline(t, binDir, pristine)
	pristine34 := etcdtest.ExtractFixture(t, fixture34)
	downRef := baseline34(t, binDir, pristine34)

	// checkUp: the etcd2 fixture walked to 3.7.3, as 3.7.3 serves it, against its
	// v2 keyspace (values, indexes as revisions, TTLs as leases, expired keys gone).
	checkUp := func(t *testing.T, dataDir string, since time.Time, lost *int) {
		s := etcdtest.Serve(t, binDir, "3.7.3", dataDir)
		got := s.DumpAll(t)
		s.Stop()
		// The committed fixture's TTL keys expired long before any run: when
		// exactly the conversion ran does not matter to them.
		*lost = missingV2Live(upRef, got.Keys, since)
		if keys, _, _ := compareV2V3(t, upRef, got, since); keys < 300 {
			t.Fatalf("only %d keys compared", keys)
		}
	}
	// checkDown: the etcd3 fixture walked to 3.7.3 and back to 3.4.13/etcd2, as
	// 3.4.13 serves it through the v2 API, against its v3 keyspace.
	checkDown := func(t *testing.T, dataDir string, since time.Time, lost *int) {
		s := etcdtest.ServeV2(t, binDir, "3.4.13", dataDir)
		got := etcdtest.DumpV2(t, s.ClientURL)
		s.Stop()
		diffs, n := compareV3V2Ref(downRef, got, since, time.Now())
		*lost = n
		if len(diffs) > 0 {
			t.Fatalf("the v2 keyspace differs from the etcd3 fixture's as etcd 3.4.13 serves it:\n%s", strings.Join(diffs, "\n"))
		}
	}

	// The uninterrupted runs: how long each takes (random kills fall within it),
	// and a first check of the references' comparisons on data no kill touched.
	upDir := etcdtest.CopyDir(t, pristine)
	start := time.Now()
	if r := runMigrate(t, binDir, upDir, nil, "--target-version=3.7.3", "--exec=false"); r.code != 0 {
		t.Fatalf("uninterrupted up: exit %d\n%s", r.code, r.stderr)
	}
	upTime := time.Since(start)
	var lost int
	checkUp(t, etcdtest.CopyDir(t, upDir), start, &lost)
	// The etcd2 fixture holds a non-JSON value on purpose, which etcd2 cannot take
	// back: the rollback starts from the etcd3 fixture walked to 3.7.3.
	downStart := etcdtest.CopyDir(t, pristine34)
	if r := runMigrate(t, binDir, downStart, nil, "--target-version=3.7.3", "--exec=false"); r.code != 0 {
		t.Fatalf("walk the etcd3 fixture to 3.7.3: exit %d\n%s", r.code, r.stderr)
	}
	downDir := etcdtest.CopyDir(t, downStart)
	start = time.Now()
	if r := runMigrate(t, binDir, downDir, nil, "--target-version=3.4.13", "--target-storage=etcd2", "--exec=false"); r.code != 0 {
		t.Fatalf("uninterrupted down: exit %d\n%s", r.code, r.stderr)
	}
	downTime := time.Since(start)
	checkDown(t, downDir, start, &lost)
	if len(upRef) < 300 || len(downRef.Keys) < 300 {
		t.Fatalf("the references hold %d (v2) and %d (v3) nodes, want >= 300", len(upRef), len(downRef.Keys))
	}
	t.Logf("uninterrupted: up %v, down %v; references: %d v2 nodes (etcd2 fixture), %d v3 keys (etcd3 fixture)",
		upTime.Round(time.Millisecond), downTime.Round(time.Millisecond), len(upRef), len(downRef.Keys))

	scenarios := []*crashScenario{
		{name: "up", start: pristine, target: []string{"--target-version=3.7.3"}, duration: upTime, check: checkUp},
		{name: "down", start: downStart, target: []string{"--target-version=3.4.13", "--target-storage=etcd2"}, duration: downTime, check: checkDown},
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
	tally := &crashTally{reached: map[string]int{}}
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
	// The floor: every named point reached by a kill, when points were tried.
	var unreached []string
	floor := 0
	if occurrences > 0 {
		floor = len(fault.Points)
		for _, p := range fault.Points {
			if tally.reached[p] == 0 {
				unreached = append(unreached, p)
			}
		}
	}
	pointCases := len(scenarios) * len(fault.Points) * occurrences
	etcdtest.Report(t, "crash", fmt.Sprintf("crash suite: kills survived %d/%d counted (%d at injection points, %d at random times); "+
		"named injection points reached %d/%d (floor %d; %d of %d point occurrences not reached, not counted); "+
		"random kills %d: %d landed mid-run (counted), %d after the run ended (not counted); "+
		"keys lost %d (against each fixture as etcd 3.4.13 serves it)",
		tally.survived, total, tally.injected, tally.random,
		len(fault.Points)-len(unreached), len(fault.Points), floor, tally.notReached, pointCases,
		kills, tally.random, tally.randomLate, tally.lost))
	if len(fault.Points)-len(unreached) < floor {
		t.Errorf("only %d of the %d named injection points were reached by a kill (floor %d); not reached: %s",
			len(fault.Points)-len(unreached), len(fault.Points), floor, strings.Join(unreached, ", "))
	}
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
	started := time.Now()
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
		tally.mu.Lock()
		tally.randomLate++
		tally.mu.Unlock()
		t.Logf("the run finished before the kill at %v: not counted", after)
		return
	default:
		t.Fatalf("run failed instead of being killed: %v\n%s", err, log.String())
	}
	tally.mu.Lock()
	if point != "" {
		tally.injected++
		name, _, _ := strings.Cut(point, ":")
		tally.reached[name]++
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
	// check fails t on a difference: the keys lost are counted all the same.
	lost := 0
	defer func() {
		tally.mu.Lock()
		tally.lost += lost
		tally.mu.Unlock()
	}()
	sc.check(t, dataDir, started, &lost)
	tally.mu.Lock()
	if !t.Failed() {
		tally.survived++
	}
	tally.mu.Unlock()
}

// missingV2Live counts the v2 keys of want, live at the time at (no TTL, or
// expiring later), that the v3 keyspace got lacks.
func missingV2Live(want map[string]etcdtest.V2Node, got map[string]etcdtest.KV, at time.Time) int {
	n := 0
	for k, w := range want {
		if w.Dir || !w.Expiration.IsZero() && !w.Expiration.After(at) {
			continue
		}
		if _, ok := got[k]; !ok {
			n++
		}
	}
	return n
}

// compareV3V2Ref compares the v2 keyspace a rollback to etcd2 left with the v3
// keyspace it came from (want, as etcd served it before any migration): every v3
// key is a v2 key with its value, createdIndex = create_revision and modifiedIndex
// = mod_revision; a key has a TTL exactly when it had a lease, expiring its
// lease's remaining TTL after the conversion, which ran between from and to (the
// remaining TTL is the granted one, or less by the few minutes a lease checkpoint
// may have recorded); no other key exists. It returns at most 10 differences and
// the number of want's keys got lacks.
func compareV3V2Ref(want etcdtest.Dump, got map[string]etcdtest.V2Node, from, to time.Time) (diffs []string, lost int) {
	const checkpointSlack = 5 * time.Minute
	diffs, lost, _, _ = etcdtest.DiffV3V2(want, got, from, to, checkpointSlack, time.Second)
	if len(diffs) > 10 {
		diffs = diffs[:10]
	}
	return diffs, lost
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
