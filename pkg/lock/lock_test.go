//go:build !windows

package lock_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/pkg/lock"
)

func TestPathFor(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/var/etcd/data", "/var/etcd/data"},
		{"/var/etcd/data/", "/var/etcd/data"},
		{"/var/etcd/./data", "/var/etcd/data"},
		{"data", "data"},
	}
	for _, tc := range tests {
		if got := lock.PathFor(filepath.FromSlash(tc.in)); got != filepath.FromSlash(tc.want) {
			t.Errorf("PathFor(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// dirState lists a dir's parent's entries and the dir's own, to show Acquire
// writes nothing anywhere.
func dirState(t *testing.T, dataDir string) string {
	t.Helper()
	var out []string
	for _, d := range []string{filepath.Dir(dataDir), dataDir} {
		es, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			out = append(out, d+"/"+e.Name())
		}
	}
	return strings.Join(out, "\n")
}

func TestAcquireHeldRelease(t *testing.T) {
	parent := t.TempDir()
	dataDir := filepath.Join(parent, "data")
	if err := os.Mkdir(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dataDir, "version.txt"), []byte("3.5.35/etcd3\n"), 0o644)
	before := dirState(t, dataDir)
	pid := strconv.Itoa(os.Getpid())

	l, err := lock.Acquire(dataDir)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	if l.Path() != dataDir {
		t.Errorf("Path() = %q, want the data dir %q", l.Path(), dataDir)
	}
	if got := dirState(t, dataDir); got != before {
		t.Errorf("Acquire wrote files:\n%s\nbefore:\n%s", got, before)
	}

	// flock locks belong to the open file description: a second open in the same
	// process conflicts.
	l2, err := lock.Acquire(dataDir)
	if err == nil {
		l2.Release()
		t.Fatal("second Acquire succeeded while the lock is held")
	}
	if !errors.Is(err, lock.ErrHeld) {
		t.Errorf("second Acquire error %q does not wrap ErrHeld", err)
	}
	for _, w := range []string{
		"another migrate holds the lock on " + dataDir,
		"(pid " + pid + " ",
		"flock on the data dir",
		"the lock frees itself when its holder exits",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("second Acquire error %q does not contain %q", err, w)
		}
	}
	if err := l.Release(); err != nil {
		t.Fatalf("Release: %v", err)
	}
	l3, err := lock.Acquire(dataDir)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	if err := l3.Release(); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

// TestAcquireThroughAnotherPath: the lock is on the directory, not on a name: a
// symbolic link to it (as a second mount of it would be) finds it held.
func TestAcquireThroughAnotherPath(t *testing.T) {
	dataDir := t.TempDir()
	link := filepath.Join(t.TempDir(), "data")
	if err := os.Symlink(dataDir, link); err != nil {
		t.Fatal(err)
	}
	l, err := lock.Acquire(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if _, err := lock.Acquire(link); !errors.Is(err, lock.ErrHeld) {
		t.Fatalf("Acquire through a link = %v, want ErrHeld", err)
	}
}

// TestAcquireHeldByOtherProcess: another process holds the dir's flock (flock(1)
// on a shell's descriptor of the dir; the shell then execs sleep, which keeps it);
// the message names that process; once it is killed the lock is free.
func TestAcquireHeldByOtherProcess(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("SKIPPED: flock(1) (util-linux) is not installed")
	}
	dataDir := t.TempDir()
	cmd := exec.Command("sh", "-c", `exec 9<"$0" && flock -x 9 && exec sleep 600`, dataDir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for {
		var l *lock.Lock
		l, err = lock.Acquire(dataDir)
		if errors.Is(err, lock.ErrHeld) {
			break
		}
		if l != nil {
			l.Release()
		}
		if time.Now().After(deadline) {
			t.Fatalf("flock(1) never took %s: %v", dataDir, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The kernel lists the process that placed the lock: flock(1), a child of the
	// shell, which has exited by now (the shell's descriptor keeps the lock).
	if !strings.Contains(err.Error(), "(pid ") || !strings.Contains(err.Error(), ", flock on the data dir)") {
		t.Errorf("error %q names no holder", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	for {
		l, err := lock.Acquire(dataDir)
		if err == nil {
			l.Release()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lock still held after its holder was killed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAcquireSeparateDataDirs(t *testing.T) {
	parent := t.TempDir()
	for _, d := range []string{"data", "data-events"} {
		os.Mkdir(filepath.Join(parent, d), 0o700)
	}
	a, err := lock.Acquire(filepath.Join(parent, "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	b, err := lock.Acquire(filepath.Join(parent, "data-events"))
	if err != nil {
		t.Fatalf("Acquire of a second data dir in the same parent: %v", err)
	}
	defer b.Release()
}

func TestAcquireMissingOrFile(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "no", "such", "data")
	_, err := lock.Acquire(dataDir)
	if err == nil || errors.Is(err, lock.ErrHeld) || !strings.Contains(err.Error(), "open data dir "+dataDir+" to lock it") {
		t.Fatalf("Acquire of a missing dir = %v", err)
	}
	file := filepath.Join(t.TempDir(), "data")
	os.WriteFile(file, []byte("x"), 0o600)
	if _, err := lock.Acquire(file); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("Acquire of a file = %v", err)
	}
}
