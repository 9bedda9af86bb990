// Package backup keeps a complete copy of a data dir at <data-dir>.bak, taken before
// the first step of a migration, and a record beside it (<data-dir>.bak.json) of
// which migration it belongs to.
//
// Retention: the copy of a migration that has not reached its target yet is never
// replaced — retries after a failure (what a kubelet does, again and again) keep
// the data as it was before the migration, and copy nothing. Once a run reaches
// its target the record says so, and the copy stays until the next migration that
// changes data replaces it with its own pre-migration copy: one backup is kept.
//
// The copy is written under a temporary name and swapped in only when complete and
// fsynced, so a good older backup is never replaced by a partial one; the record is
// written (durably) only once the copy is in place.
package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/etcd-migrate/etcd-migrate/pkg/datadir"
	"github.com/etcd-migrate/etcd-migrate/pkg/durable"
	"github.com/etcd-migrate/etcd-migrate/pkg/fault"
)

// Path is the backup of dataDir: <data-dir>.bak beside it, or, when the data dir is
// a mount of its own (a container that mounts only the data dir, as kubeadm's
// static pod mounts /var/lib/etcd), <data-dir>/.etcd-migrate-backup/<name>.bak
// inside it: beside it is then the container's own filesystem, gone with the
// container, and no backup.
func Path(dataDir string) string {
	clean := filepath.Clean(dataDir)
	if OwnMount(clean) {
		return filepath.Join(clean, datadir.BackupDirName, filepath.Base(clean)+".bak")
	}
	return clean + ".bak"
}

// OwnMount says whether dir is a mount point: on another device than its parent,
// or listed as a mount point in /proc/self/mountinfo (a bind mount of the parent's
// filesystem).
func OwnMount(dir string) bool {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return false
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return false
	}
	if abs, err := filepath.Abs(real); err == nil {
		real = abs
	}
	if real == "/" {
		return false
	}
	return isMountPoint(real, fi)
}

// RecordPath is the record of what Path(dataDir) holds.
func RecordPath(dataDir string) string { return Path(dataDir) + ".json" }

// Record says which migration a backup belongs to.
type Record struct {
	// Before is the data's state when it was copied (version.txt or what the data
	// says), e.g. "3.4.13/etcd3".
	Before string `json:"before"`
	// Target is the target of the run that took the copy.
	Target string    `json:"target"`
	Taken  time.Time `json:"taken"`
	// Completed is set once a run reached its target: the migration the copy was
	// taken for has ended, and the next one replaces the copy.
	Completed bool `json:"completed"`
	// CompletedAt is the target that run reached.
	CompletedAt string `json:"completed_at,omitempty"`
	// WALDir is the separate WAL dir (--wal-dir) whose files the copy holds in
	// member/wal, where etcd keeps the WAL without --wal-dir.
	WALDir string `json:"wal_dir,omitempty"`
}

// State is a data dir's backup as found on disk.
type State struct {
	Path   string
	Exists bool
	// Record is nil when there is no readable record: a backup of an older
	// migrate, or one whose record was lost (treated as a completed migration's).
	Record *Record
	// RecordErr says why a record file present could not be read.
	RecordErr error
}

// Pending reports a backup of a migration that has not reached its target: it is
// kept, whatever a run does, until one does.
func (s State) Pending() bool { return s.Exists && s.Record != nil && !s.Record.Completed }

// Inspect reads the backup of dataDir and its record. It changes nothing.
func Inspect(dataDir string) State {
	s := State{Path: Path(dataDir)}
	fi, err := os.Stat(s.Path)
	s.Exists = err == nil && fi.IsDir()
	b, err := os.ReadFile(RecordPath(dataDir))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		s.RecordErr = err
	default:
		var r Record
		if err := json.Unmarshal(b, &r); err != nil || r.Before == "" {
			s.RecordErr = fmt.Errorf("%s: not a backup record: %v", RecordPath(dataDir), err)
		} else {
			s.Record = &r
		}
	}
	return s
}

// CleanStale removes what an interrupted backup left beside the data dir: copies
// in <data-dir>.bak.tmp-* (a killed copy; the data was not changed after it, so
// the next copy takes its place), temp files of the record, and a previous backup
// set aside as <data-dir>.bak.old (put back if the new one never took its place).
// Call it under the data dir lock. It returns what it removed or put back.
func CleanStale(dataDir string) ([]string, error) {
	dst := Path(dataDir)
	var done []string
	tmps, _ := filepath.Glob(dst + ".tmp-*")
	recTmps, _ := filepath.Glob(filepath.Join(filepath.Dir(dst), "."+filepath.Base(RecordPath(dataDir))+".tmp-*"))
	for _, p := range append(tmps, recTmps...) {
		if err := os.RemoveAll(p); err != nil {
			return done, fmt.Errorf("remove the stale backup copy %s: %w", p, err)
		}
		done = append(done, p)
	}
	old := dst + ".old"
	if _, err := os.Lstat(old); err == nil {
		if _, err := os.Stat(dst); errors.Is(err, os.ErrNotExist) {
			// Cut short between the two renames of Make: the previous backup is
			// still the one its record describes.
			if err := os.Rename(old, dst); err != nil {
				return done, fmt.Errorf("put the previous backup %s back to %s: %w", old, dst, err)
			}
			done = append(done, old+" (put back)")
		} else if err := os.RemoveAll(old); err != nil {
			return done, fmt.Errorf("remove the replaced backup %s: %w", old, err)
		} else {
			done = append(done, old)
		}
	}
	if len(done) > 0 {
		if err := durable.SyncDir(filepath.Dir(dst)); err != nil {
			return done, err
		}
	}
	return done, nil
}

// Complete records that a run reached target: the backup's migration has ended.
// Nothing happens unless a pending backup exists.
func Complete(dataDir string, target string) (bool, error) {
	s := Inspect(dataDir)
	if !s.Pending() {
		return false, nil
	}
	r := *s.Record
	r.Completed, r.CompletedAt = true, target
	return true, writeRecord(dataDir, r)
}

func writeRecord(dataDir string, r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := durable.WriteFile(RecordPath(dataDir), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("backup record %s: %w", RecordPath(dataDir), err)
	}
	return nil
}

// Result describes a written backup.
type Result struct {
	Path  string
	Files int
	Bytes int64 // data bytes copied (holes of sparse files and clones are not counted)
	// Cloned files share their data with the original (a reflink: copy on write)
	// where the filesystem can; ClonedBytes is their size.
	Cloned      int
	ClonedBytes int64
}

// Make copies dataDir to Path(dataDir) and records rec beside it: into
// <path>.tmp-*, fsynced, then renamed into place (the previous backup is removed
// only after that), then the record is written. It stops with ctx's error, leaving
// the previous backup as it was, when ctx is done (a signal) before the copy is
// complete.
func Make(ctx context.Context, dataDir string, rec Record) (*Result, error) {
	dst := Path(dataDir)
	parent := filepath.Dir(dst)
	if filepath.Base(parent) == datadir.BackupDirName {
		if err := os.MkdirAll(parent, 0o700); err != nil {
			return nil, fmt.Errorf("backup of %s: %w", dataDir, err)
		}
		if err := durable.SyncDir(filepath.Dir(parent)); err != nil {
			return nil, err
		}
	}
	tmp, err := os.MkdirTemp(parent, filepath.Base(dst)+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("backup of %s: %w", dataDir, err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o700); err != nil {
		return nil, err
	}
	res := &Result{Path: dst}
	c := &copier{res: res}
	fault.Point(fault.BackupBeforeCopy)
	if err := copyTree(ctx, dataDir, tmp, c); err != nil {
		return nil, err
	}
	if rec.WALDir != "" {
		// The copy is a complete data dir: the WAL goes where etcd keeps it
		// without --wal-dir.
		walCopy := filepath.Join(tmp, "member", "wal")
		if _, err := os.Stat(walCopy); err == nil {
			return nil, fmt.Errorf("backup of %s: it has a member/wal dir and a separate WAL dir %s: remove the one etcd does not use", dataDir, rec.WALDir)
		}
		if err := os.MkdirAll(filepath.Dir(walCopy), 0o700); err != nil {
			return nil, err
		}
		if err := os.Mkdir(walCopy, 0o700); err != nil {
			return nil, err
		}
		if err := copyTree(ctx, rec.WALDir, walCopy, c); err != nil {
			return nil, err
		}
	}
	if err := syncTree(tmp); err != nil {
		return nil, err
	}
	fault.Point(fault.BackupAfterCopy)
	old := dst + ".old"
	if err := os.RemoveAll(old); err != nil {
		return nil, err
	}
	if _, err := os.Stat(dst); err == nil {
		if err := os.Rename(dst, old); err != nil {
			return nil, fmt.Errorf("set the previous backup %s aside: %w", dst, err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return nil, fmt.Errorf("install backup %s: %w", dst, err)
	}
	done = true
	if err := durable.SyncDir(parent); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(old); err != nil {
		return nil, err
	}
	// Until the record is written, the previous one (completed, or none) stands:
	// a crash here makes the next run copy again, from data no step has changed.
	rec.Completed, rec.CompletedAt = false, ""
	if rec.Taken.IsZero() {
		rec.Taken = time.Now().UTC().Truncate(time.Second)
	}
	if err := writeRecord(dataDir, rec); err != nil {
		return nil, err
	}
	fault.Point(fault.BackupAfterRename)
	return res, nil
}

// copier copies the files of one backup.
type copier struct {
	res *Result
	// noClone: the filesystem said it cannot clone; one failed try per backup.
	noClone bool
}

// cloneFn is cloneFile; tests count and fail the clones.
var cloneFn = cloneFile

// copyTree copies the files and dirs below src into the existing dir dst, skipping
// migrate's work dirs, adding to c.res's counts. It stops with ctx's error.
func copyTree(ctx context.Context, src, dst string, c *copier) error {
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if rel == "." {
			return nil
		}
		if d.IsDir() && filepath.Dir(rel) == "." && datadir.NotData(d.Name()) {
			return fs.SkipDir // a step's scratch space or the backup itself, not data
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.Mkdir(target, info.Mode().Perm())
		case info.Mode().IsRegular():
			c.res.Files++
			return c.copyFile(ctx, path, target, info)
		default:
			return fmt.Errorf("%s is neither a file nor a directory (%s): not backing up special files", path, info.Mode().Type())
		}
	})
	if err != nil {
		return fmt.Errorf("backup of %s into %s: %w", src, dst, err)
	}
	return nil
}

// chunk is cp's read size: with 1 MiB chunks a copy ran at half cp's speed (a
// 1.2 GiB file on ext4, cached or not).
const chunk = 128 << 10

var zeros = make([]byte, chunk)

// copyFile copies src to dst, fsynced: a clone sharing src's data where the
// filesystem can (nothing to copy, however big), otherwise the data keeping holes.
func (c *copier) copyFile(ctx context.Context, src, dst string, info fs.FileInfo) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, info.Mode().Perm())
	if err != nil {
		return err
	}
	cloned, err := c.clone(in, out)
	if err == nil && !cloned {
		var n int64
		n, err = copyData(ctx, in, out)
		c.res.Bytes += n
	}
	if err == nil {
		err = out.Sync() // a clone too: its extents are metadata to make durable
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && cloned {
		c.res.Cloned++
		c.res.ClonedBytes += info.Size()
	}
	return err
}

// clone makes out share in's data, unless this backup's filesystem already said
// it cannot; it reports false (copy instead) when the filesystem cannot.
func (c *copier) clone(in, out *os.File) (bool, error) {
	if c.noClone {
		return false, nil
	}
	err := cloneFn(out, in)
	switch {
	case err == nil:
		return true, nil
	case cloneUnsupported(err):
		c.noClone = true
		return false, nil
	}
	return false, fmt.Errorf("clone %s to %s: %w", in.Name(), out.Name(), err)
}

// copyData copies in to the empty out keeping holes: all-zero chunks are skipped
// (etcd's preallocated 64 MiB WAL segments are mostly holes). It returns the bytes
// written.
func copyData(ctx context.Context, in, out *os.File) (int64, error) {
	adviseSequential(in)
	buf := make([]byte, chunk)
	var written, off int64
	for {
		if err := ctx.Err(); err != nil {
			return written, err
		}
		n, rerr := io.ReadFull(in, buf)
		if n > 0 && !bytes.Equal(buf[:n], zeros[:n]) {
			if _, err := out.WriteAt(buf[:n], off); err != nil {
				return written, err
			}
			written += int64(n)
		}
		off += int64(n)
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return written, rerr
		}
	}
	return written, out.Truncate(off)
}

// syncTree fsyncs every directory of the copy (files were fsynced as written).
func syncTree(root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		return durable.SyncDir(path)
	})
}
