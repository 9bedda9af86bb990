//go:build !linux

package backup

import (
	"errors"
	"os"
)

// Clones (FICLONE) are only tried on Linux: elsewhere every file is copied.
func cloneFile(out, in *os.File) error { return errors.ErrUnsupported }

func cloneUnsupported(error) bool { return true }

func adviseSequential(*os.File) {}
