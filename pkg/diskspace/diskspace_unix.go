//go:build !windows

package diskspace

import (
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"
)

// Free is the space an unprivileged writer may use in dir's file system.
func Free(dir string) (int64, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * int64(st.Bsize), true
}

// SameFileSystem says whether a and b are on one file system (true when unsure).
func SameFileSystem(a, b string) bool {
	var sa, sb unix.Stat_t
	if unix.Stat(a, &sa) != nil || unix.Stat(b, &sb) != nil {
		return true
	}
	return sa.Dev == sb.Dev
}

// Allocated is the space a file takes on disk (holes not counted).
func Allocated(info fs.FileInfo) int64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512
	}
	return info.Size()
}
