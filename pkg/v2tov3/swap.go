package v2tov3

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// The swap moves the etcd2 member dir into the work dir and the new one into its
// place: two renames on one filesystem. Recover undoes a swap that version.txt does
// not record yet, so a crash anywhere leaves data that a rerun converts again.

const oldMemberName = "member.etcd2"

func swap(dataDir, work string) error {
	member := filepath.Join(dataDir, "member")
	old := filepath.Join(work, oldMemberName)
	if err := os.Rename(member, old); err != nil {
		return fmt.Errorf("move %s aside: %w", member, err)
	}
	if err := os.Rename(filepath.Join(work, "out", "member"), member); err != nil {
		// Put the original back; the data dir stays etcd2.
		if rerr := os.Rename(old, member); rerr != nil {
			return fmt.Errorf("install converted member dir: %v; and restoring %s from %s failed: %w", err, member, old, rerr)
		}
		return fmt.Errorf("install converted member dir: %w", err)
	}
	if err := versionfile.SyncDir(dataDir); err != nil {
		return err
	}
	return versionfile.SyncDir(work)
}

// Recover finishes or undoes an interrupted conversion in dataDir. recorded is what
// version.txt says now: if it still says etcd2, any swapped-in member dir is put
// aside and the original restored; if it says etcd3, the conversion completed and
// only the work dir is removed.
func Recover(dataDir string, recordedEtcd2 bool) (recovered bool, err error) {
	work := filepath.Join(dataDir, WorkDirName)
	if fi, err := os.Stat(work); err != nil || !fi.IsDir() {
		return false, nil // nothing interrupted (or no data dir: Inspect reports it)
	}
	member := filepath.Join(dataDir, "member")
	old := filepath.Join(work, oldMemberName)
	_, oldErr := os.Stat(old)
	if recordedEtcd2 && oldErr == nil {
		if _, err := os.Stat(member); err == nil {
			aside := filepath.Join(work, "member.unrecorded")
			if err := os.RemoveAll(aside); err != nil {
				return false, fmt.Errorf("recover interrupted conversion: %w", err)
			}
			if err := os.Rename(member, aside); err != nil {
				return false, fmt.Errorf("recover interrupted conversion: %w", err)
			}
		}
		if err := os.Rename(old, member); err != nil {
			return false, fmt.Errorf("recover interrupted conversion: restore %s: %w", member, err)
		}
		if err := versionfile.SyncDir(dataDir); err != nil {
			return false, err
		}
	}
	return true, Cleanup(dataDir)
}

// Cleanup removes the work dir (and the etcd2 member dir kept in it) once
// version.txt records etcd3.
func Cleanup(dataDir string) error {
	work := filepath.Join(dataDir, WorkDirName)
	if err := os.RemoveAll(work); err != nil {
		return fmt.Errorf("remove %s: %w", work, err)
	}
	return versionfile.SyncDir(dataDir)
}
