// Package datadir owns an etcd data dir as migrate sees it: its layout, what the
// data records about the etcd that last wrote it (read offline, without changing a
// byte), and whether version.txt agrees with that.
package datadir

import (
	"os"
	"path/filepath"
	"sort"
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
	files, err := SnapFiles(SnapDir(dataDir))
	if err != nil {
		return 0, -1, err
	}
	for _, f := range files {
		if fi, err := os.Stat(f.Path); err == nil {
			return f.Index, fi.Size(), nil
		}
	}
	return 0, -1, nil
}

// SnapFile is a member/snap/<term>-<index>.snap file; the name tells both.
type SnapFile struct {
	Path        string
	Term, Index uint64
}

// SnapFiles lists the v2 snapshot files of snapDir, newest first, by their names
// (others are skipped). Unlike etcd's Snapshotter it never renames or deletes one.
func SnapFiles(snapDir string) ([]SnapFile, error) {
	names, err := filepath.Glob(filepath.Join(snapDir, "*.snap"))
	if err != nil {
		return nil, err
	}
	var out []SnapFile
	for _, n := range names {
		t, i, ok := strings.Cut(strings.TrimSuffix(filepath.Base(n), ".snap"), "-")
		term, err1 := strconv.ParseUint(t, 16, 64)
		index, err2 := strconv.ParseUint(i, 16, 64)
		if ok && err1 == nil && err2 == nil {
			out = append(out, SnapFile{Path: n, Term: term, Index: index})
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Index > out[b].Index })
	return out, nil
}
