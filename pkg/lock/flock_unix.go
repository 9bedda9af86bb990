//go:build !windows

package lock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

var errWouldBlock = unix.EWOULDBLOCK

// PathFor is what the lock of dataDir is taken on: the data dir itself. Nothing is
// written for it, inside the data or beside it.
func PathFor(dataDir string) string { return filepath.Clean(dataDir) }

// openTarget opens the data dir read-only: flock needs only an open descriptor,
// and a directory's lock lives on its inode, which every mount of it shares.
func openTarget(dataDir string) (*os.File, string, error) {
	path := PathFor(dataDir)
	f, err := os.Open(path)
	if err != nil {
		return nil, path, fmt.Errorf("open data dir %s to lock it: %w", path, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.IsDir() {
		f.Close()
		if err == nil {
			err = errors.New("not a directory")
		}
		return nil, path, fmt.Errorf("lock data dir %s: %w", path, err)
	}
	return f, path, nil
}

func tryLock(f *os.File) error {
	err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return errWouldBlock
	}
	return err
}

func unlock(f *os.File) error { return unix.Flock(int(f.Fd()), unix.LOCK_UN) }

// recordHolder: nothing to record, the kernel knows the holder (holderOf).
func recordHolder(*os.File) {}

// holderOf names the process holding the flock on f's inode, as far as the
// kernel tells (/proc/locks on Linux).
func holderOf(f *os.File, path string) string {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err == nil {
		if pid := flockHolder(uint64(st.Dev), st.Ino); pid > 0 {
			s := "pid " + strconv.Itoa(pid)
			if comm := processName(pid); comm != "" {
				s += " " + comm
			}
			return s + ", flock on the data dir"
		}
	}
	return "flock on the data dir " + path
}

// KeepAcrossExec clears close-on-exec so the exec'd etcd inherits the lock and holds
// it for as long as it serves the data dir: no migrator can touch a live data dir.
func (l *Lock) KeepAcrossExec() error {
	_, err := unix.FcntlInt(l.f.Fd(), unix.F_SETFD, 0)
	return err
}
