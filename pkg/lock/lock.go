// Package lock keeps two migrators off one data dir. On Unix it is an flock on the
// data dir itself (its inode), so it holds whatever is mounted: the data dir's
// parent, or only the data dir (two containers each with their own parent still
// lock the same directory). The kernel drops the lock when its holder dies, so a
// killed migrator never leaves a lock that blocks the next run.
package lock

import (
	"errors"
	"fmt"
	"os"
)

// ErrHeld is returned (wrapped) when another process holds the lock.
var ErrHeld = errors.New("another migrate holds the lock")

// Lock is a held lock.
type Lock struct {
	f    *os.File
	path string
}

// Acquire takes the lock for dataDir without waiting. On Unix dataDir must exist
// (the caller creates a missing one first).
func Acquire(dataDir string) (*Lock, error) {
	f, path, err := openTarget(dataDir)
	if err != nil {
		return nil, err
	}
	if err := tryLock(f); err != nil {
		holder := holderOf(f, path)
		f.Close()
		if errors.Is(err, errWouldBlock) {
			return nil, fmt.Errorf("%w on %s (%s): wait for it to finish or stop it; the lock frees itself when its holder exits", ErrHeld, dataDir, holder)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	recordHolder(f)
	return &Lock{f: f, path: path}, nil
}

// Path is the path the lock is taken on.
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
