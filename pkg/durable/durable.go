// Package durable writes files so that a crash leaves the old content or the new,
// never a torn one: temp file beside the target, fsync, rename, fsync the directory.
package durable

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// WriteFile atomically replaces path with data.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return replace(path, perm, func(tmp *os.File) error {
		if _, err := tmp.Write(data); err != nil {
			return fmt.Errorf("write %s (%d bytes): %w", tmp.Name(), len(data), err)
		}
		return nil
	})
}

// replace atomically replaces path with what fill writes into a temp file beside
// it (mode perm): fsync, rename, fsync the directory.
func replace(path string, perm os.FileMode, fill func(tmp *os.File) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	err = func() error {
		if err := fill(tmp); err != nil {
			return err
		}
		if err := tmp.Chmod(perm); err != nil {
			return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
		}
		if err := tmp.Sync(); err != nil {
			return fmt.Errorf("fsync %s: %w", tmp.Name(), err)
		}
		return nil
	}()
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", tmp.Name(), cerr)
	}
	if err == nil {
		if err = os.Rename(tmp.Name(), path); err != nil {
			err = fmt.Errorf("rename %s to %s: %w", tmp.Name(), path, err)
		}
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir fsyncs a directory so a rename or create in it is durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !isSyncUnsupported(err) {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}

// CopyFile atomically replaces dst with a copy of src (mode perm), as WriteFile,
// streaming.
func CopyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return replace(dst, perm, func(tmp *os.File) error {
		if _, err := io.Copy(tmp, in); err != nil {
			return fmt.Errorf("copy %s to %s: %w", src, tmp.Name(), err)
		}
		return nil
	})
}

// SyncTree fsyncs every regular file and every directory under root (root
// included), each directory after what it holds: a tree another program wrote
// (etcd, etcdctl) is durable, names and content, once it returns.
func SyncTree(root string) error {
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			dirs = append(dirs, p)
		case d.Type().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return fmt.Errorf("fsync %s: %w", p, err)
			}
			defer f.Close()
			if err := f.Sync(); err != nil && !isSyncUnsupported(err) {
				return fmt.Errorf("fsync %s: %w", p, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := SyncDir(dirs[i]); err != nil {
			return err
		}
	}
	return nil
}
