package migrate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// prepareLockDir makes sure the data dir is a directory that can be locked (the
// lock is an flock on the data dir itself): a missing one is created, mode 0700
// as etcd wants it. created says so, for the caller to remove it again (if still
// empty) when the run refuses.
func prepareLockDir(dataDir string) (created bool, err error) {
	fi, err := os.Stat(dataDir)
	switch {
	case err == nil && !fi.IsDir():
		return false, fmt.Errorf("data dir %s is not a directory: point --data-dir (DATA_DIRECTORY) at the etcd data directory", dataDir)
	case err == nil:
		return false, nil
	case !errors.Is(err, os.ErrNotExist):
		return false, fmt.Errorf("data dir %s: %w", dataDir, err)
	}
	if err := os.MkdirAll(filepath.Dir(filepath.Clean(dataDir)), 0o755); err != nil {
		return false, fmt.Errorf("create parent of data dir %s: %w", dataDir, err)
	}
	if err := os.Mkdir(dataDir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return false, fmt.Errorf("create data dir %s: %w", dataDir, err)
	}
	return true, nil
}
