package cluster

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// MigrateRun is one migrate process started for a member, running on its own.
type MigrateRun struct {
	Member  *Member
	Cmd     *exec.Cmd
	Stdout  *etcdtest.SyncBuffer
	Stderr  *etcdtest.SyncBuffer
	Started time.Time

	done    chan struct{}
	code    int           // set before done is closed; -1: did not exit normally
	elapsed time.Duration // set before done is closed
}

// MigrateEnv is the environment migrate gets for m (after the test's own, minus
// ETCD_*): the Kubernetes etcd image's variables.
func (c *Cluster) MigrateEnv(m *Member, target string) []string {
	return []string{
		"DATA_DIRECTORY=" + m.DataDir,
		"TARGET_VERSION=" + target,
		"DO_NOT_MOVE_BINARIES=true",
	}
}

// MigrateFlags are the flags migrate gets for m before the test's own: the bundle
// in binDir and a private client port of its own on 127.0.0.1 (every member's
// step etcd runs on this machine, so the default 18629 would collide).
func (c *Cluster) MigrateFlags(t testing.TB) []string {
	return []string{
		"--bin-dir=" + c.binDir,
		"--bundled-versions=" + etcdtest.Bundled,
		fmt.Sprintf("--port=%d", etcdtest.FreePort(t)),
	}
}

// MigrateCommand is the command RunMigrate starts: migrate <MigrateFlags> <flags>
// -- <Args(m)> with MigrateEnv(m, target) and then env (later entries win).
func (c *Cluster) MigrateCommand(t testing.TB, m *Member, target string, env []string, flags ...string) *exec.Cmd {
	args := append(c.MigrateFlags(t), flags...)
	args = append(append(args, "--"), c.Args(m)...)
	cmd := exec.Command(filepath.Join(c.binDir, "migrate"), args...)
	cmd.Env = append(append(cleanEnv(), c.MigrateEnv(m, target)...), env...)
	return cmd
}

// RunMigrate starts migrate for m towards target and returns at once. The run is
// stopped at test cleanup if still going (SIGTERM, SIGKILL after 30 s): with
// --exec it has become m's served etcd.
func (c *Cluster) RunMigrate(t testing.TB, m *Member, target string, env []string, flags ...string) *MigrateRun {
	t.Helper()
	return c.StartCommand(t, m, c.MigrateCommand(t, m, target, env, flags...))
}

// StartCommand starts cmd, a migrate command for m (MigrateCommand, perhaps
// changed by the test), as RunMigrate does.
func (c *Cluster) StartCommand(t testing.TB, m *Member, cmd *exec.Cmd) *MigrateRun {
	t.Helper()
	r := &MigrateRun{Member: m, Cmd: cmd, Stdout: &etcdtest.SyncBuffer{}, Stderr: &etcdtest.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = r.Stdout, r.Stderr
	// Own process group, so that Kill can hit migrate alone (its step etcd dies by
	// its own parent-death signal); never outliving the test binary, also once it
	// has exec'd etcd.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	r.Started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: start migrate: %v", m.Name, err)
	}
	go func() {
		err := cmd.Wait()
		r.elapsed = time.Since(r.Started)
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			r.code = ee.ExitCode()
		default:
			r.code = -1
		}
		close(r.done)
	}()
	m.mu.Lock()
	m.run = r
	m.mu.Unlock()
	t.Cleanup(r.Stop)
	return r
}

// Done is closed when the process has exited.
func (r *MigrateRun) Done() <-chan struct{} { return r.done }

// Wait waits at most timeout for the exit and returns the exit code (-1 for a
// death by signal); ok is false on timeout.
func (r *MigrateRun) Wait(timeout time.Duration) (code int, ok bool) {
	select { // an exited run answers even with a zero timeout
	case <-r.done:
		return r.code, true
	default:
	}
	select {
	case <-r.done:
		return r.code, true
	case <-time.After(timeout):
		return 0, false
	}
}

// Elapsed is the time from start to exit (valid once Done).
func (r *MigrateRun) Elapsed() time.Duration {
	<-r.done
	return r.elapsed
}

// Kill SIGKILLs the migrate process alone (not its process group: the step etcd
// it started goes down through its parent-death signal, as on a real node) and
// waits for it and for its children.
func (r *MigrateRun) Kill(t testing.TB) {
	_ = r.Cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
	etcdtest.WaitChildrenGone(t, r.Member.DataDir, 5*time.Second)
}

// Stop ends the run if still going: SIGTERM, SIGKILL of its group after 30 s.
func (r *MigrateRun) Stop() {
	select {
	case <-r.done:
		return
	default:
	}
	_ = r.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-r.Cmd.Process.Pid, syscall.SIGKILL)
		<-r.done
	}
}

// WaitOutput waits at most timeout for the n-th line of stderr that holds what;
// false if the run exits or the time runs out first.
func (r *MigrateRun) WaitOutput(what string, n int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if strings.Count(r.Stderr.String(), what) >= n {
			return true
		}
		select {
		case <-r.done:
			return false
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// ErrorLines are the "migrate: error: " lines of stderr so far.
func (r *MigrateRun) ErrorLines() []string {
	var lines []string
	for _, l := range strings.Split(r.Stderr.String(), "\n") {
		if strings.HasPrefix(l, "migrate: error: ") {
			lines = append(lines, l)
		}
	}
	return lines
}

// Summary is one line per fact of the run plus its stderr tail, for failures.
func (r *MigrateRun) Summary() string {
	state := "running"
	select {
	case <-r.done:
		state = fmt.Sprintf("exit %d after %v", r.code, r.elapsed.Round(time.Millisecond))
	default:
	}
	return fmt.Sprintf("--- migrate %s: %s\n%s", r.Member.Name, state, lastLines(r.Stderr.String(), 60))
}
