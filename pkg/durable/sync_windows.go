//go:build windows

package durable

// Windows cannot fsync a directory handle; NTFS journals the rename itself.
func isSyncUnsupported(error) bool { return true }
