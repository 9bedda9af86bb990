// Package lock keeps two migrators off one data dir: an flock on a file beside the
// data dir. The kernel drops the lock when its holder dies, so a killed migrator
// never leaves a lock that blocks the next run.
package lock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrHeld is returned (wrapped) when another process holds the lock.
var ErrHeld = errors.New("another migrate holds the lock")

// Lock is a held lock.
type Lock struct {
	f    *os.File
	path string
}

// PathFor is the lock file of dataDir: ".<name>.migrate.lock" in its parent, so it
// is neither inside the data (never copied, never confusing etcd) nor shared by two
// data dirs.
func PathFor(dataDir string) string {
	clean := filepath.Clean(dataDir)
	return filepath.Join(filepath.Dir(clean), "."+filepath.Base(clean)+".migrate.lock")
}

// Acquire takes the lock for dataDir without waiting.
func Acquire(dataDir string) (*Lock, error) {
	path := PathFor(dataDir)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file %s: %w", path, err)
	}
	if err := tryLock(f); err != nil {
		holder := readHolder(f)
		f.Close()
		if errors.Is(err, errWouldBlock) {
			return nil, fmt.Errorf("%w on %s (%s): wait for it to finish or stop it; the lock frees itself when its holder exits", ErrHeld, dataDir, holderText(path, holder))
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// Record who holds it, for the message another migrator prints.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f, path: path}, nil
}

func readHolder(f *os.File) string {
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	return strings.TrimSpace(string(buf[:n]))
}

func holderText(path, pid string) string {
	if pid == "" {
		return "lock file " + path
	}
	return "pid " + pid + ", lock file " + path
}

// Path is the lock file's path.
func (l *Lock) Path() string { return l.path }

// Fd is the lock's file descriptor.
func (l *Lock) Fd() uintptr { return l.f.Fd() }

// Release drops the lock.
func (l *Lock) Release() error {
	if err := unlock(l.f); err != nil {
		l.f.Close()
		return err
	}
	return l.f.Close()
}
