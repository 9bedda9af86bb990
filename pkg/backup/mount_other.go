//go:build !linux

package backup

import "os"

// isMountPoint: only Linux is checked (the image's platform); elsewhere the backup
// goes beside the data dir.
func isMountPoint(string, os.FileInfo) bool { return false }
