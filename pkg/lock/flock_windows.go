//go:build windows

package lock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/windows"
)

var errWouldBlock = windows.ERROR_LOCK_VIOLATION

// PathFor is the lock file of dataDir on Windows, which cannot lock a directory:
// ".<name>.migrate.lock" in its parent.
func PathFor(dataDir string) string {
	clean := filepath.Clean(dataDir)
	return filepath.Join(filepath.Dir(clean), "."+filepath.Base(clean)+".migrate.lock")
}

func openTarget(dataDir string) (*os.File, string, error) {
	path := PathFor(dataDir)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, path, fmt.Errorf("open lock file %s: %w", path, err)
	}
	return f, path, nil
}

func tryLock(f *os.File) error {
	ol := new(windows.Overlapped)
	err := windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, ol)
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		return errWouldBlock
	}
	return err
}

func unlock(f *os.File) error {
	return windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, new(windows.Overlapped))
}

// recordHolder writes this process's pid into the lock file, for the message
// another migrator prints.
func recordHolder(f *os.File) {
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
}

func holderOf(f *os.File, path string) string {
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	if pid := strings.TrimSpace(string(buf[:n])); pid != "" {
		return "pid " + pid + ", lock file " + path
	}
	return "lock file " + path
}

// KeepAcrossExec is a no-op: Windows has no exec; migrate waits for etcd instead.
func (l *Lock) KeepAcrossExec() error { return nil }
