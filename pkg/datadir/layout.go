// Package datadir owns an etcd data dir as migrate sees it: its layout, what the
// data records about the etcd that last wrote it (read offline, without changing a
// byte), and whether version.txt agrees with that.
package datadir

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// WorkDirPrefix starts the names of the work dirs a step keeps in the data dir
// (pkg/memberdir); one may hold the original member dir until version.txt records
// the step.
const WorkDirPrefix = ".migrate-"

// BackupDirName is the dir inside a data dir that holds its backup when the data
// dir is a mount of its own (pkg/backup). etcd only warns about an entry it does
// not know ("found invalid file under data directory"), every bundled release.
const BackupDirName = ".etcd-migrate-backup"

// NotData says whether a top-level entry of a data dir is migrate's own, not etcd
// data: a step's work dir or the backup dir. Copies, sizes and detection skip it.
func NotData(name string) bool {
	return strings.HasPrefix(name, WorkDirPrefix) || name == BackupDirName
}

// Paths inside a data dir, as etcd lays them out.
func BackendPath(dataDir string) string { return filepath.Join(dataDir, "member", "snap", "db") }
func WALDir(dataDir string) string      { return filepath.Join(dataDir, "member", "wal") }
func SnapDir(dataDir string) string     { return filepath.Join(dataDir, "member", "snap") }

// NewestSnapshotIndex is the raft index of the newest member/snap/<term>-<index>.snap
// file, 0 when there is none.
func NewestSnapshotIndex(dataDir string) (uint64, error) {
	idx, _, err := NewestSnapshotFile(dataDir)
	return idx, err
}

// NewestSnapshotFile is NewestSnapshotIndex with the file's size (-1 when none).
func NewestSnapshotFile(dataDir string) (index uint64, size int64, err error) {
	names, err := filepath.Glob(filepath.Join(SnapDir(dataDir), "*.snap"))
	if err != nil {
		return 0, -1, err
	}
	size = -1
	for _, n := range names {
		base := strings.TrimSuffix(filepath.Base(n), ".snap")
		_, idxHex, ok := strings.Cut(base, "-")
		if !ok {
			continue
		}
		idx, err := strconv.ParseUint(idxHex, 16, 64)
		if err != nil {
			continue
		}
		if fi, err := os.Stat(n); err == nil && idx > index {
			index, size = idx, fi.Size()
		}
	}
	return index, size, nil
}
