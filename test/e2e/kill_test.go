package e2e

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// TestKillDuringRollback SIGKILLs migrate at several points of a 3.7.3 -> 3.4.13
// rollback chain (downgrades, the snapshot restore, the swaps), then reruns it: the
// rerun must converge to 3.4.13/etcd3 with the original keyspace, and between the
// kill and the rerun version.txt must name a state the data agrees with.
//
// The kills fall at fractions of the length of an uninterrupted rollback measured
// first (a run takes 3 to 7 s here: fixed delays of 5 s and more landed after the
// run had ended). Each kill must land mid-run, migrate dying of the SIGKILL: a run
// that ended before its kill proves nothing, so it is retried on a fresh copy at
// the same fraction of the shortest run seen so far, up to killAttempts times in
// all, and the test fails if no kill landed mid-run.
func TestKillDuringRollback(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	pristine := etcdtest.ExtractFixture(t, fixture34)
	want := baseline34(t, binDir, pristine)
	walked := etcdtest.CopyDir(t, pristine)
	if r := runMigrate(t, binDir, walked, nil, "--target-version=3.7.3", "--exec=false"); r.code != 0 {
		t.Fatalf("walk: exit %d\n%s", r.code, r.stderr)
	}
	start := time.Now()
	if r := runMigrate(t, binDir, etcdtest.CopyDir(t, walked), nil, "--target-version=3.4.13", "--exec=false"); r.code != 0 {
		t.Fatalf("uninterrupted rollback: exit %d\n%s", r.code, r.stderr)
	}
	shortest := time.Since(start)
	t.Logf("uninterrupted rollback 3.7.3 -> 3.4.13: %v", shortest.Round(time.Millisecond))

	const killAttempts = 4
	fractions := []float64{0.05, 0.2, 0.4, 0.6, 0.8}
	if testing.Short() {
		fractions = fractions[1:3]
	}
	killed, late := 0, 0
	for _, f := range fractions {
		var dataDir, log string
		var d time.Duration
		for attempt := 1; ; attempt++ {
			d = time.Duration(f * float64(shortest))
			var ranFor time.Duration
			if dataDir, log, ranFor = killRollbackAfter(t, binDir, walked, d); dataDir != "" {
				break
			}
			late++
			shortest = min(shortest, ranFor)
			if attempt == killAttempts {
				t.Fatalf("kill at %.0f%% of the run: %d attempts, each run ended before its kill (the last after %v, the kill due at %v): no kill landed mid-run",
					100*f, attempt, ranFor.Round(time.Millisecond), d.Round(time.Millisecond))
			}
			t.Logf("kill at %.0f%% of the run: the run ended after %v, before its kill at %v; retrying at %v",
				100*f, ranFor.Round(time.Millisecond), d.Round(time.Millisecond), time.Duration(f*float64(shortest)).Round(time.Millisecond))
		}
		killed++
		st := runMigrate(t, binDir, dataDir, nil, "status")
		if st.code != 0 {
			t.Fatalf("kill after %v: status after the kill: exit %d\n%s%s\nmigrate log:\n%s", d, st.code, st.stdout, st.stderr, log)
		}
		r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.4.13", "--exec=false")
		if r.code != 0 {
			t.Fatalf("kill after %v: rerun exit %d\n%s\nkilled run's log:\n%s", d, r.code, r.stderr, log)
		}
		if got := readVersionTxt(t, dataDir); got != "3.4.13/etcd3\n" {
			t.Fatalf("kill after %v: version.txt = %q", d, got)
		}
		assertServedKeyspace(t, binDir, "3.4.13", dataDir, want, fmt.Sprintf("kill after %v", d))
		t.Logf("killed mid-run after %v (%.0f%% of the run; %s); rerun converged", d.Round(time.Millisecond), 100*f, lastStep(log))
	}
	t.Logf("%d kills landed mid-run and converged; %d runs ended before their kill (retried, not counted)", killed, late)
}

// killRollbackAfter runs the rollback to 3.4.13 on a fresh copy of walked and
// SIGKILLs migrate after d. It returns the data dir and the run's log when the kill
// landed mid-run (migrate died of it); when the run ended first it returns "" and
// how long the run took (a run that failed on its own fails the test).
func killRollbackAfter(t *testing.T, binDir, walked string, d time.Duration) (dataDir, log string, ranFor time.Duration) {
	t.Helper()
	dataDir = etcdtest.CopyDir(t, walked)
	cmd := migrateCmd(t, binDir, dataDir, nil, "--target-version=3.4.13", "--exec=false")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
		// Ended before the kill.
	case <-time.After(d):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		err = <-done
	}
	ranFor = time.Since(start)
	etcdtest.WaitChildrenGone(t, dataDir, 5*time.Second)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return dataDir, stderr.String(), ranFor
		}
	}
	if err != nil {
		t.Fatalf("the run meant to be killed after %v failed on its own after %v: %v\n%s", d, ranFor, err, stderr.String())
	}
	return "", stderr.String(), ranFor
}

// lastStep names the last step a log reached.
func lastStep(log string) string {
	last := "before any step"
	for _, l := range strings.Split(log, "\n") {
		if i := strings.Index(l, "version_txt="); i >= 0 && strings.Contains(l, `msg="step done"`) {
			last = "after recording " + strings.Fields(l[i:])[0]
		}
	}
	return last
}
