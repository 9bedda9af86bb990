package migrate

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/etcd-migrate/etcd-migrate/pkg/backup"
	"github.com/etcd-migrate/etcd-migrate/pkg/datadir"
	"github.com/etcd-migrate/etcd-migrate/pkg/diskspace"
	"github.com/etcd-migrate/etcd-migrate/pkg/steprun"
)

// checkDiskSpace refuses a run its file systems cannot hold, before anything is
// written (a full disk mid-step is survivable, but an operator would rather know
// first): a new backup needs the data's size where it goes (nothing when the
// copy of an unfinished migration is kept, see backupBeforeChange); a step that
// writes a second member dir (conversions, snapshot restore) about the data's size
// again in the data dir; any etcd run room for a new WAL segment and a snapshot.
func (c *Config) checkDiskSpace(plan []steprun.Step) error {
	if !steprun.AnyChangesData(plan) {
		return nil // version.txt only
	}
	// A retry keeps the pending copy and copies nothing.
	newBackup := c.Backup && !backup.Inspect(c.DataDir).Pending()
	size, err := allocatedSize(c.DataDir)
	if err != nil {
		return err
	}
	var inData int64
	for _, s := range plan {
		inData = max(inData, s.Space(size))
	}
	// A separate WAL dir gets the steps' new WAL segments, and the backup copies
	// it too.
	backupSize := size
	if c.WALDir != "" {
		walSize, err := allocatedSize(c.WALDir)
		if err != nil {
			return err
		}
		backupSize += walSize
		if !diskspace.SameFileSystem(c.WALDir, c.DataDir) {
			inData -= steprun.StepSpace
			if err := needFree(c.WALDir, steprun.StepSpace, "the steps' WAL"); err != nil {
				return err
			}
		}
	}
	// The backup's dir: beside the data dir, or inside it when the data dir is a
	// mount of its own (backup.Path).
	parent := filepath.Dir(filepath.Clean(c.DataDir))
	if backup.OwnMount(c.DataDir) {
		parent = c.DataDir
	}
	if newBackup && diskspace.SameFileSystem(parent, c.DataDir) {
		inData += backupSize
		newBackup = false
	}
	if err := needFree(c.DataDir, inData, "the steps"); err != nil {
		return err
	}
	if newBackup {
		return needFree(parent, backupSize, "the backup")
	}
	return nil
}

func needFree(dir string, need int64, what string) error {
	free, ok := diskspace.Free(dir)
	if !ok || free >= need {
		return nil
	}
	hint := "free space there"
	if strings.Contains(what, "backup") {
		hint += " or run with --backup=false"
	}
	return fmt.Errorf("not enough disk space in %s: %s need about %d MiB, %d MiB are free; %s", dir, what, diskspace.MiB(need), diskspace.MiB(free), hint)
}

// allocatedSize is the disk space the data dir's files take (holes of sparse
// files not counted), without migrate's work dirs and backup.
func allocatedSize(dataDir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && filepath.Dir(path) == filepath.Clean(dataDir) && datadir.NotData(d.Name()) {
			return fs.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		total += diskspace.Allocated(info)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", dataDir, err)
	}
	return total, nil
}
