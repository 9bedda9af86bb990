// Package memberdir replaces a data dir's member directory with a new one built
// beside it (by a conversion or a snapshot restore) so that a crash at any point
// leaves data a rerun can use: the new dir is built in a work dir inside the data
// dir, the swap is two renames on one filesystem, the original stays in the work dir
// until version.txt records the step, and Recover settles an interrupted swap.
package memberdir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-version"
	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/server/v3/storage/schema"

	"github.com/etcd-migrate/etcd-migrate/pkg/datadir"
	"github.com/etcd-migrate/etcd-migrate/pkg/durable"
	"github.com/etcd-migrate/etcd-migrate/pkg/etcdversion"
	"github.com/etcd-migrate/etcd-migrate/pkg/fault"
	"github.com/etcd-migrate/etcd-migrate/pkg/legacywal"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

const (
	// WorkDirPrefix starts the name of every work dir in a data dir.
	WorkDirPrefix = datadir.WorkDirPrefix
	oldMember     = "member.orig"
	targetFile    = "target-version.txt"
)

// Work is one replacement in progress.
type Work struct {
	DataDir  string
	Dir      string // <data-dir>/.migrate-<name>
	replaced bool
}

// Begin creates a fresh work dir for a step that will record target in version.txt.
func Begin(dataDir, name string, target versionfile.Pair) (*Work, error) {
	w := &Work{DataDir: dataDir, Dir: filepath.Join(dataDir, WorkDirPrefix+name)}
	if err := os.RemoveAll(w.Dir); err != nil {
		return nil, fmt.Errorf("clear %s: %w", w.Dir, err)
	}
	if err := os.Mkdir(w.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", w.Dir, err)
	}
	// Recover compares it with version.txt to tell a finished step from one cut short.
	if err := durable.WriteFile(filepath.Join(w.Dir, targetFile), []byte(target.String()+"\n"), 0o600); err != nil {
		return nil, err
	}
	return w, nil
}

// Path is a path inside the work dir.
func (w *Work) Path(name string) string { return filepath.Join(w.Dir, name) }

// AbortUnlessReplaced drops the work dir of a step that failed before Replace; the
// original member dir was never touched. After Replace the work dir holds the
// original until version.txt records the step (Cleanup, Recover).
func (w *Work) AbortUnlessReplaced() {
	if !w.replaced {
		_ = os.RemoveAll(w.Dir)
	}
}

// Replace moves the data dir's member dir into the work dir and newMember (inside
// the work dir) into its place.
func (w *Work) Replace(newMember string) error {
	member := filepath.Join(w.DataDir, "member")
	old := w.Path(oldMember)
	// The new member dir's files and names must be durable before a rename makes it
	// the data: etcdctl's snapshot restore fsyncs no directory of what it writes.
	if err := durable.SyncTree(newMember); err != nil {
		return err
	}
	if err := os.Rename(member, old); err != nil {
		return fmt.Errorf("move %s aside: %w", member, err)
	}
	fault.Point(fault.MemberDirMidSwap)
	if err := os.Rename(newMember, member); err != nil {
		if rerr := os.Rename(old, member); rerr != nil {
			return fmt.Errorf("install %s: %v; and restoring %s from %s failed: %w", newMember, err, member, old, rerr)
		}
		return fmt.Errorf("install %s: %w", newMember, err)
	}
	w.replaced = true
	if err := durable.SyncDir(w.DataDir); err != nil {
		return err
	}
	return durable.SyncDir(w.Dir)
}

// Cleanup removes every work dir (and the original member dir kept in it) once
// version.txt records the step.
func Cleanup(dataDir string) error {
	for _, w := range workDirs(dataDir) {
		if err := os.RemoveAll(w); err != nil {
			return fmt.Errorf("remove %s: %w", w, err)
		}
	}
	return durable.SyncDir(dataDir)
}

func workDirs(dataDir string) []string {
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), WorkDirPrefix) {
			out = append(out, filepath.Join(dataDir, e.Name()))
		}
	}
	return out
}

// Recover settles replacements a crash or failure interrupted. A step whose target
// version.txt already records is finished: only its work dir goes. Otherwise the
// original member dir is put back (the swapped-in one set aside), so the data is
// again what version.txt says and the step reruns from the start.
func Recover(dataDir string) (recovered bool, err error) {
	fi, err := os.Stat(dataDir)
	if err != nil || !fi.IsDir() {
		return false, nil // no data dir: Inspect reports it
	}
	recorded, _ := versionfile.Read(dataDir)
	for _, w := range workDirs(dataDir) {
		recovered = true
		b, _ := os.ReadFile(filepath.Join(w, targetFile))
		target, perr := versionfile.ParsePair(string(b))
		if perr == nil && recorded.Version != nil && recorded.Equal(target) {
			continue // finished; Cleanup below
		}
		old := filepath.Join(w, oldMember)
		if _, err := os.Stat(old); errors.Is(err, os.ErrNotExist) {
			continue // never swapped
		}
		member := filepath.Join(dataDir, "member")
		if _, err := os.Stat(member); err == nil {
			aside := filepath.Join(w, "member.unrecorded")
			if err := os.RemoveAll(aside); err != nil {
				return false, fmt.Errorf("recover %s: %w", w, err)
			}
			if err := os.Rename(member, aside); err != nil {
				return false, fmt.Errorf("recover %s: %w", w, err)
			}
		}
		if err := os.Rename(old, member); err != nil {
			return false, fmt.Errorf("recover %s: restore %s: %w", w, member, err)
		}
		if err := durable.SyncDir(dataDir); err != nil {
			return false, err
		}
	}
	if !recovered {
		return false, nil
	}
	return true, Cleanup(dataDir)
}

// Fit shapes a member dir that etcdutl's restore wrote under dataDir for the etcd
// that will read it: etcd 2.x gets its WAL in the unpadded frame format
// (pkg/legacywal), etcd 3.0 a db whose freelist is written, and etcd 2.x, which keeps no v3 backend, gets no db file (the
// etcd 3.0 that later upgrades the data creates it from the v2 store, as from any
// 2.x data; an old db there would not match the snapshots 2.x takes).
func Fit(dataDir string, reader *version.Version) error {
	caps := etcdversion.For(reader)
	if !caps.PaddedWAL {
		if _, err := legacywal.Unpad(datadir.WALDir(dataDir)); err != nil {
			return fmt.Errorf("write the WAL etcd %s reads: %w", reader, err)
		}
	}
	if caps.V3Backend && (!caps.UnsyncedFreelist || !caps.TermInBackend) {
		// bbolt writes the freelist when a db that has none is opened without
		// NoFreelistSync ("so NoFreelistSync unaware boltdb can open the db").
		db, err := bolt.Open(datadir.BackendPath(dataDir), 0o600, &bolt.Options{NoFreelistSync: caps.UnsyncedFreelist})
		if err != nil {
			return fmt.Errorf("open the db for etcd %s: %w", reader, err)
		}
		if !caps.TermInBackend {
			// The restore writes the term beside the consistent index, as 3.5+
			// does; no etcd before 3.5 writes or reads it, and a term says
			// "written by 3.5+" to detection (pkg/datadir).
			err = db.Update(func(tx *bolt.Tx) error {
				if meta := tx.Bucket(schema.Meta.Name()); meta != nil {
					return meta.Delete(schema.MetaTermKeyName)
				}
				return nil
			})
		}
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write the db etcd %s reads: %w", reader, err)
		}
	}
	if !caps.V3Backend {
		db := datadir.BackendPath(dataDir)
		if err := os.Remove(db); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("etcd %s keeps no v3 backend: %w", reader, err)
		}
		if err := durable.SyncDir(filepath.Dir(db)); err != nil {
			return err
		}
	}
	return nil
}
