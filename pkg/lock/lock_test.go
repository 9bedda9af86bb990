package lock_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/etcd-migrate/etcd-migrate/pkg/lock"
)

func TestPathFor(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/var/etcd/data", "/var/etcd/.data.migrate.lock"},
		{"/var/etcd/data/", "/var/etcd/.data.migrate.lock"},
		{"/var/etcd/./data", "/var/etcd/.data.migrate.lock"},
		{"/var/etcd/data-events", "/var/etcd/.data-events.migrate.lock"},
		{"data", ".data.migrate.lock"},
	}
	for _, tc := range tests {
		if got := lock.PathFor(filepath.FromSlash(tc.in)); got != filepath.FromSlash(tc.want) {
			t.Errorf("PathFor(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestAcquireHeldRelease(t *testing.T) {
	parent := t.TempDir()
	dataDir := filepath.Join(parent, "data") // need not exist
	wantPath := filepath.Join(parent, ".data.migrate.lock")
	pid := strconv.Itoa(os.Getpid())

	l, err := lock.Acquire(dataDir)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	if l.Path() != wantPath || lock.PathFor(dataDir) != wantPath {
		t.Errorf("Path() = %q, PathFor = %q; want %q", l.Path(), lock.PathFor(dataDir), wantPath)
	}
	b, err := os.ReadFile(wantPath)
	if err != nil {
		t.Fatalf("lock file: %v", err)
	}
	if string(b) != pid+"\n" {
		t.Errorf("lock file holds %q, want %q", b, pid+"\n")
	}
	if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Acquire created the data dir (stat err %v)", err)
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
		"(pid " + pid + ", lock file " + wantPath + ")",
		"the lock frees itself when its holder exits",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("second Acquire error %q does not contain %q", err, w)
		}
	}
	// The failed attempt must not clobber the holder's pid.
	if b, _ := os.ReadFile(wantPath); string(b) != pid+"\n" {
		t.Errorf("after failed Acquire the lock file holds %q, want %q", b, pid+"\n")
	}

	if err := l.Release(); err != nil {
		t.Fatalf("Release: %v", err)
	}
	l3, err := lock.Acquire(dataDir)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	if l3.Path() != wantPath {
		t.Errorf("Path() = %q, want %q", l3.Path(), wantPath)
	}
	if err := l3.Release(); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

func TestAcquireHeldWithoutPid(t *testing.T) {
	parent := t.TempDir()
	dataDir := filepath.Join(parent, "data")
	l, err := lock.Acquire(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	// A holder that never recorded its pid (flock is advisory: truncating is allowed).
	if err := os.WriteFile(l.Path(), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = lock.Acquire(dataDir)
	if !errors.Is(err, lock.ErrHeld) {
		t.Fatalf("Acquire = %v, want ErrHeld", err)
	}
	if want := "(lock file " + l.Path() + ")"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
	if strings.Contains(err.Error(), "pid") {
		t.Errorf("error %q names a pid although none is recorded", err)
	}
}

func TestAcquireSeparateDataDirs(t *testing.T) {
	parent := t.TempDir()
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
	if a.Path() == b.Path() {
		t.Errorf("two data dirs share lock file %s", a.Path())
	}
}

func TestAcquireMissingParent(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "no", "such", "data")
	_, err := lock.Acquire(dataDir)
	if err == nil {
		t.Fatal("Acquire with a missing parent succeeded")
	}
	if want := "open lock file " + lock.PathFor(dataDir); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
	if errors.Is(err, lock.ErrHeld) {
		t.Errorf("error %q wraps ErrHeld", err)
	}
}

func TestAcquireReplacesStaleHolder(t *testing.T) {
	// A lock file left by an earlier (dead) holder with a longer pid is rewritten
	// to hold exactly this process's pid.
	parent := t.TempDir()
	dataDir := filepath.Join(parent, "data")
	if err := os.WriteFile(lock.PathFor(dataDir), []byte("123456789012345678\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := lock.Acquire(dataDir)
	if err != nil {
		t.Fatalf("Acquire over a stale lock file: %v", err)
	}
	defer l.Release()
	want := strconv.Itoa(os.Getpid()) + "\n"
	if b, _ := os.ReadFile(l.Path()); string(b) != want {
		t.Errorf("lock file holds %q, want %q", b, want)
	}
}
