// Package backup keeps a complete copy of a data dir at <data-dir>.bak before a run
// changes it. The copy is written under a temporary name and swapped in only when
// complete and fsynced, so a good older backup is never replaced by a partial one.
package backup

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/etcd-migrate/etcd-migrate/pkg/fault"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// Path is the backup of dataDir.
func Path(dataDir string) string { return filepath.Clean(dataDir) + ".bak" }

// Result describes a written backup.
type Result struct {
	Path  string
	Files int
	Bytes int64 // data bytes copied (holes of sparse files are not counted)
}

// Make copies dataDir to Path(dataDir): into <path>.tmp-*, fsynced, then renamed
// into place (the previous backup is removed only after that).
func Make(dataDir string) (*Result, error) {
	dst := Path(dataDir)
	parent := filepath.Dir(dst)
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
	fault.Point(fault.BackupBeforeCopy)
	err = filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dataDir, path)
		if rel == "." {
			return nil
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), versionfile.WorkDirPrefix) {
			return fs.SkipDir // a step's scratch space, not data
		}
		target := filepath.Join(tmp, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.Mkdir(target, info.Mode().Perm())
		case info.Mode().IsRegular():
			n, err := copyFile(path, target, info)
			res.Files++
			res.Bytes += n
			return err
		default:
			return fmt.Errorf("%s is neither a file nor a directory (%s): not backing up special files", path, info.Mode().Type())
		}
	})
	if err != nil {
		return nil, fmt.Errorf("backup of %s into %s: %w", dataDir, tmp, err)
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
	fault.Point(fault.BackupAfterRename)
	if err := versionfile.SyncDir(parent); err != nil {
		return nil, err
	}
	return res, os.RemoveAll(old)
}

const chunk = 1 << 20

var zeros = make([]byte, chunk)

// copyFile copies src to dst keeping holes: all-zero chunks are skipped (etcd's
// preallocated 64 MiB WAL segments are mostly holes).
func copyFile(src, dst string, info fs.FileInfo) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, info.Mode().Perm())
	if err != nil {
		return 0, err
	}
	buf := make([]byte, chunk)
	var written, off int64
	for {
		n, rerr := io.ReadFull(in, buf)
		if n > 0 {
			if !bytes.Equal(buf[:n], zeros[:n]) {
				if _, err := out.WriteAt(buf[:n], off); err != nil {
					out.Close()
					return written, err
				}
				written += int64(n)
			}
			off += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			out.Close()
			return written, rerr
		}
	}
	if err := out.Truncate(off); err != nil {
		out.Close()
		return written, err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return written, err
	}
	return written, out.Close()
}

// syncTree fsyncs every directory of the copy (files were fsynced as written).
func syncTree(root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		return versionfile.SyncDir(path)
	})
}
