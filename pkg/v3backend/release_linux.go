package v3backend

import (
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// ReleaseMapped drops the pages of a read-only bolt mapping from this process
// (MADV_DONTNEED): reading a large backend through its mmap otherwise leaves every
// page resident, so the read-back would cost as much memory as the db's size. The
// pages stay in the page cache; a later access maps them again.
func ReleaseMapped(db *bolt.DB, size int64) {
	if size <= 0 {
		return
	}
	_, _, _ = unix.Syscall(unix.SYS_MADVISE, db.Info().Data, uintptr(size), unix.MADV_DONTNEED)
}
