package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/pkg/datadir"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// procStat is what /proc/<pid>/stat says of a process.
type procStat struct {
	pid, ppid int
	comm      string
}

// processes lists every process (skipping those that vanish while reading).
func processes() []procStat {
	entries, _ := os.ReadDir("/proc")
	var out []procStat
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		s := string(b)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open {
			continue
		}
		f := strings.Fields(s[close+1:])
		if len(f) < 2 || f[0] == "Z" {
			continue // zombies are gone in all but name
		}
		ppid, _ := strconv.Atoi(f[1])
		out = append(out, procStat{pid: pid, ppid: ppid, comm: s[open+1 : close]})
	}
	return out
}

// childNamed is the pid of parent's child whose command name is comm, or 0.
func childNamed(parent int, comm string) int {
	for _, p := range processes() {
		if p.ppid == parent && p.comm == comm {
			return p.pid
		}
	}
	return 0
}

// processesUsing lists live processes whose command line mentions s.
func processesUsing(s string) []string {
	var out []string
	for _, p := range processes() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.pid))
		if err == nil && bytes.Contains(b, []byte(s)) {
			out = append(out, fmt.Sprintf("%d %s", p.pid, p.comm))
		}
	}
	return out
}

func alive(pid int) bool {
	for _, p := range processes() {
		if p.pid == pid {
			return true
		}
	}
	return false
}

// argValue is the value of --name=value in args.
func argValue(args []string, name string) string {
	v := ""
	for _, a := range args {
		if after, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			v = after
		}
	}
	return v
}

// waitChildReady waits until migrate (pid) runs a child named comm that logged
// (relayed by migrate at debug level) that it serves clients: by then etcd has
// its own signal handler, and the step still has its version wait, a write and
// the snapshot to go. It returns the child's pid.
func waitChildReady(t *testing.T, pid int, comm string, stderr *etcdtest.SyncBuffer, exited <-chan error) int {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	marker := "source=" + comm + ` line="{\"level\":\"info\"`
	for {
		if child := childNamed(pid, comm); child != 0 {
			log := stderr.String()
			for _, l := range strings.Split(log, "\n") {
				if strings.Contains(l, marker) && strings.Contains(l, "ready to serve client requests") {
					return child
				}
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("migrate exited (%v) before %s ran:\n%s", err, comm, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s child of migrate came up:\n%s", comm, stderr.String())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSignalDuringStep sends SIGTERM or SIGINT to migrate while a step's etcd runs
// (3.4.13 fixture -> 3.7.3): migrate must stop that etcd gracefully, record
// nothing new, exit non-zero with one line naming the step it stopped in, leave no
// etcd behind, and a rerun must finish the walk with the original keyspace.
func TestSignalDuringStep(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	pristine := etcdtest.ExtractFixture(t, fixture34)
	want := baseline34(t, binDir, pristine)
	cases := []struct {
		sig      syscall.Signal
		child    string // the step's etcd to interrupt
		step     string // how the error line names that step
		recorded string // version.txt after the interruption
	}{
		{syscall.SIGTERM, "etcd-3.6.16", "step 2/3 upgrade-minor 3.5.35/etcd3 -> 3.6.16/etcd3 (run etcd-3.6.16)", "3.5.35/etcd3"},
		{syscall.SIGINT, "etcd-3.5.35", "step 1/3 upgrade-minor 3.4.13/etcd3 -> 3.5.35/etcd3 (run etcd-3.5.35)", "3.4.13/etcd3"},
		{syscall.SIGTERM, "etcd-3.7.3", "step 3/3 upgrade-minor 3.6.16/etcd3 -> 3.7.3/etcd3 (run etcd-3.7.3)", "3.6.16/etcd3"},
	}
	for _, tc := range cases {
		t.Run(tc.sig.String()+" in "+tc.child, func(t *testing.T) {
			wantLine := fmt.Sprintf("interrupted by a signal during %s; its etcd was stopped and version.txt records %s", tc.step, tc.recorded)
			var (
				dataDir, line string
				r             result
				child         int
				took          time.Duration
			)
			// The signal goes out within a millisecond or two of etcd's "ready"
			// line, while the step still has tens of milliseconds to go; should the
			// step win anyway, the interruption hits the next step and the run is
			// repeated on a fresh copy.
			for attempt := 1; ; attempt++ {
				dataDir = etcdtest.CopyDir(t, pristine)
				r, child, took = signalRun(t, binDir, dataDir, tc.sig, tc.child)
				line = errorLine(t, r)
				if strings.Contains(line, "interrupted by a signal during step") && !strings.Contains(line, tc.step) && attempt < 3 {
					t.Logf("attempt %d: the step ended before the signal arrived: %s", attempt, line)
					continue
				}
				break
			}
			if !strings.Contains(line, wantLine) || !strings.Contains(line, "rerun to resume") {
				t.Fatalf("error line:\n%s\nwant it to contain:\n%s", line, wantLine)
			}
			// The child got SIGTERM and shut down by itself (etcd logs the signal);
			// none of the processes is left.
			if !strings.Contains(r.stderr, "received signal; shutting down") {
				t.Errorf("the step's etcd did not log a graceful shutdown:\n%s", tailLines(r.stderr, 30))
			}
			if strings.Contains(r.stderr, "did not stop within the stop timeout") {
				t.Errorf("the step's etcd had to be killed")
			}
			if alive(child) {
				t.Fatalf("%s (pid %d) still runs after migrate exited", tc.child, child)
			}
			if left := processesUsing("--data-dir=" + dataDir); len(left) > 0 {
				t.Fatalf("processes still use the data dir: %v", left)
			}
			// Nothing new recorded: version.txt is the last completed step, and the
			// data agrees with it.
			if got := readVersionTxt(t, dataDir); got != tc.recorded+"\n" {
				t.Fatalf("version.txt = %q, want %q", got, tc.recorded)
			}
			if got := lastStep(r.stderr); got != "after recording version_txt="+tc.recorded && !(tc.recorded == "3.4.13/etcd3" && got == "before any step") {
				t.Fatalf("log: last step %s, version.txt %s", got, tc.recorded)
			}
			st, err := datadir.Detect(dataDir)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.CheckAgainst(versionfile.MustPair(tc.recorded)); err != nil {
				t.Fatalf("version.txt and the data disagree after the signal: %v", err)
			}
			if tmp, _ := filepath.Glob(filepath.Join(dataDir, ".version.txt.tmp-*")); len(tmp) > 0 {
				t.Fatalf("temp files left: %v", tmp)
			}
			t.Logf("%v %v after %s came up: exit %d in %v; data %s; %s", tc.sig, tc.child, tc.child, r.code, took.Round(time.Millisecond), st, line)

			// The rerun resumes and finishes with the original keyspace.
			rr := runMigrate(t, binDir, dataDir, nil, "--target-version=3.7.3", "--exec=false")
			if rr.code != 0 {
				t.Fatalf("rerun: exit %d\n%s", rr.code, rr.stderr)
			}
			if got := readVersionTxt(t, dataDir); got != "3.7.3/etcd3\n" {
				t.Fatalf("after the rerun version.txt = %q", got)
			}
			assertServedKeyspace(t, binDir, "3.7.3", dataDir, want, "rerun after "+tc.sig.String())
		})
	}
}

// signalRun starts a walk of dataDir to 3.7.3, sends sig to migrate once the
// step's etcd named child serves clients, and returns the run (which must exit
// non-zero within a minute), the child's pid and how long migrate took to exit.
func signalRun(t *testing.T, binDir, dataDir string, sig syscall.Signal, comm string) (result, int, time.Duration) {
	t.Helper()
	cmd := migrateCmd(t, binDir, dataDir, nil, "--target-version=3.7.3", "--exec=false", "--log-level=debug")
	var stderr etcdtest.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() }) // a no-op once it was waited for

	child := waitChildReady(t, pid, comm, &stderr, exited)
	sent := time.Now()
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-exited:
	case <-time.After(time.Minute):
		t.Fatalf("migrate still runs a minute after %v:\n%s", sig, stderr.String())
	}
	took := time.Since(sent)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("migrate after %v: %v, want a non-zero exit:\n%s", sig, err, stderr.String())
	}
	return result{code: ee.ExitCode(), stderr: stderr.String()}, child, took
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// hangingEtcd replaces etcd-3.5.35 in a copy of the bin dir with a stand-in that
// answers --version like the real one but ignores SIGTERM and never serves: an
// etcd that hangs on stop. (The real binaries stop within milliseconds.)
func hangingEtcd(t *testing.T, binDir string) string {
	t.Helper()
	return fakeBinDir(t, binDir, func(dir string) {
		os.Remove(dir + "/etcd-3.5.35")
		script := "#!/bin/sh\n" +
			"case \"$1\" in --version) echo 'etcd Version: 3.5.35'; exit 0;; esac\n" +
			"trap '' TERM\necho 'stand-in etcd ignores SIGTERM'\nexec sleep 600\n"
		if err := os.WriteFile(dir+"/etcd-3.5.35", []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	})
}

// TestHangingEtcdKilledAfterStopTimeout: a step's etcd that does not stop on
// SIGTERM is SIGKILLed after --stop-timeout, both when the step gives up (its
// --step-timeout passed) and when migrate itself gets SIGTERM; migrate then exits 1
// with the data dir unchanged and nothing left running.
func TestHangingEtcdKilledAfterStopTimeout(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	fake := hangingEtcd(t, binDir)
	pristine := etcdtest.ExtractFixture(t, fixture34)
	const stopTimeout = 700 * time.Millisecond
	for _, tc := range []struct {
		name   string
		signal bool
		want   string
	}{
		{"step timeout", false, "step 1/1 failed (version.txt records 3.4.13/etcd3"},
		{"SIGTERM to migrate", true, "interrupted by a signal during step 1/1 upgrade-minor 3.4.13/etcd3 -> 3.5.35/etcd3 (run etcd-3.5.35); its etcd was stopped and version.txt records 3.4.13/etcd3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := etcdtest.CopyDir(t, pristine)
			before := etcdtest.Checksum(t, dataDir)
			cmd := migrateCmd(t, fake, dataDir, nil, "--target-version=3.5.35", "--exec=false", "--log-level=debug",
				"--step-timeout=2s", "--stop-timeout="+stopTimeout.String())
			var stderr etcdtest.SyncBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill() })
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			// The stand-in exec'd sleep: it is migrate's child named "sleep".
			deadline := time.Now().Add(time.Minute)
			child := 0
			for child == 0 || !strings.Contains(stderr.String(), "stand-in etcd ignores SIGTERM") {
				child = childNamed(cmd.Process.Pid, "sleep")
				if time.Now().After(deadline) {
					t.Fatalf("the stand-in etcd never ran:\n%s", stderr.String())
				}
				time.Sleep(2 * time.Millisecond)
			}
			start := time.Now()
			limit := stopTimeout + 10*time.Second
			if tc.signal {
				_ = cmd.Process.Signal(syscall.SIGTERM)
			} else {
				limit += 2 * time.Second // the step timeout first
			}
			var err error
			select {
			case err = <-exited:
			case <-time.After(limit):
				t.Fatalf("migrate still runs %v later:\n%s", limit, stderr.String())
			}
			took := time.Since(start)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("exit %v, want 1:\n%s", err, stderr.String())
			}
			r := result{code: 1, stderr: stderr.String()}
			line := errorLine(t, r)
			if !strings.Contains(line, tc.want) {
				t.Fatalf("error line:\n%s\nwant it to contain:\n%s", line, tc.want)
			}
			if !strings.Contains(r.stderr, "etcd did not stop within the stop timeout: killing it") || !strings.Contains(r.stderr, "stop_timeout="+stopTimeout.String()) {
				t.Fatalf("no log line about killing the etcd after %v:\n%s", stopTimeout, tailLines(r.stderr, 20))
			}
			if tc.signal && took < stopTimeout {
				t.Fatalf("migrate exited %v after SIGTERM, before the stop timeout %v: the etcd was not given its time", took, stopTimeout)
			}
			if alive(child) {
				t.Fatalf("the stand-in etcd (pid %d) survived", child)
			}
			if after := etcdtest.Checksum(t, dataDir); after != before {
				t.Fatalf("data dir changed")
			}
			t.Logf("exit 1 %v after %s: %s", took.Round(time.Millisecond), map[bool]string{true: "SIGTERM", false: "the stand-in came up"}[tc.signal], line)
		})
	}
}
