// Package e2e runs the built migrate binary against real etcd binaries and real data
// dirs. `make test` builds both first.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/pkg/etcdproc"
)

const fixture34 = "etcd3-3.4.13.tar.gz"

// result is one migrate run.
type result struct {
	code           int
	stdout, stderr string
}

// migrateCmd builds a migrate command on dataDir with free private ports. env
// entries override the process environment.
func migrateCmd(t *testing.T, binDir, dataDir string, env []string, args ...string) *exec.Cmd {
	t.Helper()
	base := []string{
		"--data-dir=" + dataDir,
		"--bin-dir=" + binDir,
		"--bundled-versions=" + etcdtest.Bundled,
		"--name=etcd-member",
		fmt.Sprintf("--port=%d", etcdtest.FreePort(t)),
		fmt.Sprintf("--peer-port=%d", etcdtest.FreePort(t)),
	}
	if len(args) > 0 && (args[0] == "plan" || args[0] == "status") {
		// plan and status take the run's flags, after the command's name.
		base, args = append([]string{args[0]}, base...), args[1:]
	}
	cmd := exec.Command(filepath.Join(binDir, "migrate"), append(base, args...)...)
	cmd.Env = append(os.Environ(), "DO_NOT_MOVE_BINARIES=true")
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

func runMigrate(t *testing.T, binDir, dataDir string, env []string, args ...string) result {
	t.Helper()
	cmd := migrateCmd(t, binDir, dataDir, env, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	return runResult(t, cmd.Run(), &out, &errb)
}

// runResult is the result of a finished run: its output and exit code.
func runResult(t *testing.T, err error, out, errb *bytes.Buffer) result {
	t.Helper()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("run migrate: %v", err)
	}
	return r
}

func readVersionTxt(t *testing.T, dataDir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "version.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// errorLine is the one "migrate: error:" line of a failed run.
func errorLine(t *testing.T, r result) string {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.HasPrefix(l, "migrate: error: ") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("want exactly one error line, got %d; stderr:\n%s", len(lines), r.stderr)
	}
	return lines[0]
}

// execServing starts cmd, a migrate that execs etcd, and waits until url answers
// /version as etcd server version target; it fails the test if migrate exits first
// or nothing serves within a minute. The process (migrate, then etcd: same pid) is
// stopped at cleanup: SIGTERM, SIGKILL after 10 s. It returns the pid, the versions
// etcd reported and migrate's stderr up to then.
func execServing(t *testing.T, cmd *exec.Cmd, url, target string) (int, etcdproc.ServerVersions, string) {
	t.Helper()
	var stderr etcdtest.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	done := make(chan struct{})
	t.Cleanup(func() {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-done: // the test saw it exit
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(pid, syscall.SIGKILL)
			<-exited
		}
	})
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		v, err := etcdproc.GetVersions(context.Background(), url)
		if err == nil && v.Server == target {
			return pid, v, stderr.String()
		}
		select {
		case err := <-exited:
			close(done)
			t.Fatalf("migrate exited (%v) instead of becoming etcd %s:\n%s", err, target, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing served %s as etcd %s (last %+v, %v):\n%s", url, target, v, err, stderr.String())
		}
	}
}

// logLine is the first line of log containing s.
func logLine(log, s string) string {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}
