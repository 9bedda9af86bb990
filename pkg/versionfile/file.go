package versionfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/etcd-migrate/etcd-migrate/pkg/durable"
	"github.com/etcd-migrate/etcd-migrate/pkg/fault"
)

// FileName is the name of the version file in the data dir root.
const FileName = "version.txt"

// maxFileSize bounds what Read accepts: a valid file is one short line.
const maxFileSize = 64

// ErrNotExist is returned (wrapped) by Read when the data dir has no version.txt.
var ErrNotExist = errors.New("version.txt does not exist")

// Path is the version file's path in dataDir.
func Path(dataDir string) string { return filepath.Join(dataDir, FileName) }

// Read parses dataDir/version.txt. A missing file yields an error wrapping
// ErrNotExist; every other problem names the path and says what is expected.
func Read(dataDir string) (Pair, error) {
	path := Path(dataDir)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return Pair{}, fmt.Errorf("%s: %w", path, ErrNotExist)
	}
	if err != nil {
		return Pair{}, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	buf, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return Pair{}, fmt.Errorf("read %s: %w", path, err)
	}
	if len(buf) > maxFileSize {
		return Pair{}, fmt.Errorf("%s is longer than %d bytes: it should hold one line like 3.5.35/etcd3; fix or remove it (migrate then detects the state from the data)", path, maxFileSize)
	}
	p, err := ParsePair(string(buf))
	if err != nil {
		return Pair{}, fmt.Errorf("%s: %w; fix or remove it (migrate then detects the state from the data)", path, err)
	}
	return p, nil
}

// Write records p in dataDir/version.txt durably: the line goes to a temp file in
// the same directory, is fsynced, renamed over version.txt and the directory is
// fsynced, so a crash leaves either the old or the new content, never a torn one.
func Write(dataDir string, p Pair) error {
	w, err := Prepare(dataDir, p)
	if err != nil {
		return err
	}
	return w.commitOrAbort()
}

// Pending is a durable file update written ahead: the temp file holds the new
// content, fsynced, and Commit only renames it. A step prepares its version.txt
// record before it changes anything, so a disk that fills during the step cannot
// keep the step from being recorded.
type Pending struct {
	path, tmp string
}

// Prepare writes the temp file of a version.txt update to p (and removes temp files
// an interrupted run left).
func Prepare(dataDir string, p Pair) (*Pending, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	stale, _ := filepath.Glob(filepath.Join(dataDir, "."+FileName+".tmp-*"))
	for _, f := range stale {
		_ = os.Remove(f)
	}
	return prepareFile(Path(dataDir), []byte(p.String()+"\n"), 0o644)
}

// prepareFile writes data to a fsynced temp file beside path; the crash tests
// inject kills at its fault points.
func prepareFile(path string, data []byte, perm os.FileMode) (*Pending, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	w := &Pending{path: path, tmp: tmp.Name()}
	err = func() error {
		if _, err := tmp.Write(data); err != nil {
			return fmt.Errorf("write %s (%d bytes): %w", w.tmp, len(data), err)
		}
		fault.Point(fault.VersionAfterTemp)
		if err := tmp.Chmod(perm); err != nil {
			return fmt.Errorf("chmod %s: %w", w.tmp, err)
		}
		if err := tmp.Sync(); err != nil {
			return fmt.Errorf("fsync %s: %w", w.tmp, err)
		}
		return nil
	}()
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", w.tmp, cerr)
	}
	if err != nil {
		w.Abort()
		return nil, err
	}
	fault.Point(fault.VersionAfterSync)
	return w, nil
}

// Commit renames the temp file over the target and fsyncs the directory.
func (w *Pending) Commit() error {
	if err := os.Rename(w.tmp, w.path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", w.tmp, w.path, err)
	}
	fault.Point(fault.VersionAfterRename)
	return durable.SyncDir(filepath.Dir(w.path))
}

// Abort removes the temp file (nothing when Commit renamed it).
func (w *Pending) Abort() { _ = os.Remove(w.tmp) }

func (w *Pending) commitOrAbort() error {
	if err := w.Commit(); err != nil {
		w.Abort()
		return err
	}
	return nil
}
