//go:build linux

// Package powercut is a test-only FUSE file system that forgets, on a simulated
// power cut, every write that was not made durable. It is a loopback over a backing
// directory with the strict POSIX durability model:
//
//   - a file's data (its content and size) is durable only after an fsync or
//     fdatasync of that file (or FS.Sync);
//   - a name operation — create, mkdir, mknod, symlink, link, rename, unlink, rmdir —
//     is durable only after an fsync of the directory that holds the name (for a
//     rename, of both directories);
//   - a new directory's own entries are durable only after an fsync of it.
//
// Until a cut the mount shows the live state. Cut freezes the durable state,
// unmounts and rewrites the backing directory to exactly the durable state: what a
// machine rebooted after losing power at that instant would find. Mounting the
// backing directory again goes on from there.
//
// Design: the mount serves a shadow directory, a full working copy of the backing
// directory taken at Mount (on the same file system, beside it). Every inode has an
// id; the durable state is, per directory id, the listing (name -> id, mode, symlink
// target) as of its last fsync, and per file id a store file
// (<backing>/.powercut-store/<id>) with its content as of its last fsync. Writes,
// truncations and hole punches mark dirty ranges of the file's id; an fsync copies
// the dirty ranges of the shadow file into its store file and sets its size. A
// directory fsync records the directory's live listing. Cut builds the tree of the
// durable listings from the root, each file a hard link to its store file (so hard
// links stay hard links) or, for a name made durable whose data never was, an empty
// file, and replaces the backing directory's content with it.
//
// Consequences of the model: a file renamed after its data was synced, with no
// fsync of the directory, is found under its old name with the synced data; a file
// created and synced, whose directory was not, is gone. A directory renamed into a
// new parent that was synced, from a parent that was not, is found under its first
// name only (a real file system can not have two names for a directory).
//
// Limits: sync(2) and syncfs(2) by a process on the mount are not seen (FUSE does
// not forward them here; call FS.Sync); ownership, times and xattrs are not
// modelled (a materialized file has the mode of its last fsync, a never-synced one
// that of its name's directory fsync); copy_file_range is refused (ENOSYS: the
// kernel and Go fall back to read/write), FICLONE is not supported by FUSE and
// ioctls are refused; a write is "durable" in whole once synced (no torn sectors,
// no reordering within a file's synced data: a cut between two fsyncs keeps exactly
// the first). The process that mounts it must not mmap its files: a page fault
// there waits for a goroutine of the same process, which a stop-the-world of the Go
// runtime keeps from running (the unit tests mmap in a child process; migrate and
// etcd are processes of their own).
package powercut

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

const (
	storeName = ".powercut-store" // in the backing dir: the durable content of files
	newName   = ".powercut-new"   // in the backing dir: the tree a cut builds
)

// entry is one name of a durable directory listing.
type entry struct {
	id     uint64
	mode   uint32 // st_mode: type and permissions
	target string // a symlink's
}

// fileState is what a file id has done since its last fsync.
type fileState struct {
	dirty   []span // sorted, merged
	minSize int64  // the smallest size it was truncated to, or -1
	stored  bool   // its store file exists
}

type span struct{ off, end int64 }

// FS is one mount of a power-cut file system.
type FS struct {
	backing, shadow, mountpoint, store string

	server *fuse.Server

	mu      sync.Mutex
	frozen  bool
	cut     bool // Cut ran
	nextID  uint64
	rootID  uint64
	live    map[uint64]uint64           // shadow st_ino -> id of the live inode
	dirs    map[uint64]map[string]entry // durable listing per directory id
	files   map[uint64]*fileState
	stats   Stats
	skipped []string // names of the backing dir the shadow left out

	firstPath map[uint64]string // while loading: a file id's first shadow path
}

// Stats counts what the mount saw.
type Stats struct {
	FileSyncs, DirSyncs int
	BytesSynced         int64
}

// Available says why FUSE cannot be mounted here, or nil.
func Available() error {
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("no usable /dev/fuse: %w", err)
	}
	f.Close()
	if os.Geteuid() != 0 {
		if _, err := lookFusermount(); err != nil {
			return errors.New("not root (needed to mount FUSE directly) and no fusermount/fusermount3 in PATH")
		}
	}
	return nil
}

func lookFusermount() (string, error) {
	for _, n := range []string{"fusermount3", "fusermount"} {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no fusermount")
}

// Mount serves backing at mountpoint (an existing empty directory). The backing
// directory must not be touched while it is mounted.
func Mount(backing, mountpoint string) (*FS, error) {
	backing, err := filepath.Abs(backing)
	if err != nil {
		return nil, err
	}
	if mountpoint, err = filepath.Abs(mountpoint); err != nil {
		return nil, err
	}
	shadow, err := os.MkdirTemp(filepath.Dir(backing), "."+filepath.Base(backing)+".powercut-shadow-")
	if err != nil {
		return nil, err
	}
	f := &FS{
		backing: backing, shadow: shadow, mountpoint: mountpoint,
		store: filepath.Join(backing, storeName),
		live:  map[uint64]uint64{}, dirs: map[uint64]map[string]entry{}, files: map[uint64]*fileState{},
	}
	if err := f.load(); err != nil {
		os.RemoveAll(shadow)
		return nil, fmt.Errorf("powercut: load %s: %w", backing, err)
	}
	if err := f.mount(); err != nil {
		os.RemoveAll(shadow)
		os.RemoveAll(f.store)
		return nil, fmt.Errorf("powercut: mount %s: %w", mountpoint, err)
	}
	return f, nil
}

// Mountpoint is where the file system is mounted.
func (f *FS) Mountpoint() string { return f.mountpoint }

// Stats returns the counts so far.
func (f *FS) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// load copies the backing dir into the shadow and makes its content the initial
// durable state: each file's store is a hard link to it.
func (f *FS) load() error {
	for _, n := range []string{storeName, newName} {
		if err := os.RemoveAll(filepath.Join(f.backing, n)); err != nil {
			return err
		}
	}
	if err := os.Mkdir(f.store, 0o700); err != nil {
		return err
	}
	byBackingIno := map[uint64]uint64{} // backing ino -> id (hard links)
	var walk func(src, dst string) (uint64, error)
	walk = func(src, dst string) (uint64, error) {
		id := f.newID()
		f.dirs[id] = map[string]entry{}
		des, err := os.ReadDir(src)
		if err != nil {
			return 0, err
		}
		for _, de := range des {
			name := de.Name()
			if src == f.backing && (name == storeName || name == newName) {
				continue
			}
			s, d := filepath.Join(src, name), filepath.Join(dst, name)
			var st unix.Stat_t
			if err := unix.Lstat(s, &st); err != nil {
				return 0, err
			}
			e := entry{mode: st.Mode}
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFDIR:
				if err := os.Mkdir(d, os.FileMode(st.Mode&0o777)); err != nil {
					return 0, err
				}
				if e.id, err = walk(s, d); err != nil {
					return 0, err
				}
			case unix.S_IFREG:
				if id, ok := byBackingIno[st.Ino]; ok {
					e.id = id
					if err := os.Link(filepath.Join(f.shadow, f.shadowPathOf(id)), d); err != nil {
						return 0, err
					}
					break
				}
				e.id = f.newID()
				byBackingIno[st.Ino] = e.id
				if err := copySparse(s, d, st.Mode&0o7777); err != nil {
					return 0, err
				}
				if err := os.Link(s, filepath.Join(f.store, strconv.FormatUint(e.id, 10))); err != nil {
					return 0, err
				}
				f.files[e.id] = &fileState{minSize: -1, stored: true}
				f.firstPath[e.id] = strings.TrimPrefix(d, f.shadow+"/")
			case unix.S_IFLNK:
				e.id = f.newID()
				if e.target, err = os.Readlink(s); err != nil {
					return 0, err
				}
				if err := os.Symlink(e.target, d); err != nil {
					return 0, err
				}
			default:
				f.skipped = append(f.skipped, s)
				continue
			}
			f.dirs[id][name] = e
			var sst unix.Stat_t
			if err := unix.Lstat(d, &sst); err != nil {
				return 0, err
			}
			f.live[sst.Ino] = e.id
		}
		return id, nil
	}
	f.firstPath = map[uint64]string{}
	id, err := walk(f.backing, f.shadow)
	if err != nil {
		return err
	}
	f.firstPath = nil
	f.rootID = id
	var st unix.Stat_t
	if err := unix.Lstat(f.shadow, &st); err != nil {
		return err
	}
	f.live[st.Ino] = id
	return nil
}

func (f *FS) shadowPathOf(id uint64) string { return f.firstPath[id] }

func (f *FS) newID() uint64 {
	f.nextID++
	return f.nextID
}

// copySparse copies a regular file, leaving holes where the source reads zeros.
func copySparse(src, dst string, perm uint32) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, os.FileMode(perm&0o777))
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	var off int64
	for {
		n, rerr := in.Read(buf)
		if n > 0 {
			if !allZero(buf[:n]) {
				if _, err := out.WriteAt(buf[:n], off); err != nil {
					out.Close()
					return err
				}
			}
			off += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			out.Close()
			return rerr
		}
	}
	if err := out.Truncate(off); err != nil {
		out.Close()
		return err
	}
	if err := out.Chmod(os.FileMode(perm & 0o777)); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func (f *FS) mount() error {
	var rst syscall.Stat_t
	if err := syscall.Stat(f.shadow, &rst); err != nil {
		return err
	}
	root := &fs.LoopbackRoot{Path: f.shadow, Dev: uint64(rst.Dev)}
	root.NewNode = func(r *fs.LoopbackRoot, parent *fs.Inode, name string, st *syscall.Stat_t) fs.InodeEmbedder {
		return &node{LoopbackNode: fs.LoopbackNode{RootData: r}, fs: f}
	}
	rn := &node{LoopbackNode: fs.LoopbackNode{RootData: root}, fs: f}
	root.RootNode = rn
	sec := time.Second
	opts := &fs.Options{
		EntryTimeout: &sec, AttrTimeout: &sec,
		MountOptions: fuse.MountOptions{
			FsName: "powercut", Name: "powercut",
			DirectMount:       true,
			DirectMountStrict: os.Geteuid() == 0,
			MaxBackground:     64,
			DisableXAttrs:     true,
		},
	}
	srv, err := fs.Mount(f.mountpoint, rn, opts)
	if err != nil {
		return err
	}
	f.server = srv
	return nil
}

// liveID is the id of the live inode with shadow inode number ino, made up for an
// inode the mount never saw created (none should be).
func (f *FS) liveID(ino uint64) uint64 {
	id, ok := f.live[ino]
	if !ok {
		id = f.newID()
		f.live[ino] = id
	}
	return id
}

// created records a new inode (create, mkdir, mknod, symlink): a new id, even when
// the shadow reuses the inode number of an unlinked one.
func (f *FS) created(ino uint64, isFile bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.newID()
	f.live[ino] = id
	if isFile {
		f.files[id] = &fileState{minSize: -1}
	}
}

func (f *FS) state(ino uint64) *fileState {
	id := f.liveID(ino)
	s := f.files[id]
	if s == nil {
		s = &fileState{minSize: -1}
		f.files[id] = s
	}
	return s
}

// dirtied marks [off, end) of a file written.
func (f *FS) dirtied(ino uint64, off, end int64) {
	if end <= off {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.state(ino)
	s.dirty = addSpan(s.dirty, span{off, end})
}

// truncated records a truncation to size.
func (f *FS) truncated(ino uint64, size int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.state(ino)
	if s.minSize < 0 || size < s.minSize {
		s.minSize = size
	}
}

func addSpan(spans []span, n span) []span {
	out := spans[:0:0]
	for _, s := range spans {
		switch {
		case s.end < n.off:
			out = append(out, s)
		case n.end < s.off:
			if n.end >= 0 {
				out = append(out, n)
				n = span{-1, -1}
			}
			out = append(out, s)
		default: // overlapping or adjacent: merge into n
			n = span{min(n.off, s.off), max(n.end, s.end)}
		}
	}
	if n.end >= 0 {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].off < out[j].off })
	return out
}

// syncFile makes the shadow file open at fd durable as the content of its id.
func (f *FS) syncFile(ino uint64, fd int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.frozen {
		return nil
	}
	id := f.liveID(ino)
	s := f.files[id]
	if s == nil {
		s = &fileState{minSize: -1}
		f.files[id] = s
	}
	// The handle may be write-only: read through a new one (an unlinked file too).
	in, err := os.Open("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return err
	}
	defer in.Close()
	fd = int(in.Fd())
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	out, err := os.OpenFile(filepath.Join(f.store, strconv.FormatUint(id, 10)), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	s.stored = true
	if s.minSize >= 0 {
		if err := out.Truncate(s.minSize); err != nil {
			return err
		}
	}
	buf := make([]byte, 256<<10)
	for _, sp := range s.dirty {
		end := min(sp.end, st.Size)
		for off := sp.off; off < end; {
			n := min(int64(len(buf)), end-off)
			r, err := unix.Pread(fd, buf[:n], off)
			if err != nil {
				return err
			}
			if r == 0 {
				break
			}
			if _, err := out.WriteAt(buf[:r], off); err != nil {
				return err
			}
			off += int64(r)
			f.stats.BytesSynced += int64(r)
		}
	}
	if err := out.Truncate(st.Size); err != nil {
		return err
	}
	if err := out.Chmod(os.FileMode(st.Mode & 0o777)); err != nil {
		return err
	}
	s.dirty, s.minSize = nil, -1
	f.stats.FileSyncs++
	return nil
}

// syncDir makes the live listing of the shadow directory dir durable.
func (f *FS) syncDir(dir string) error {
	des, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var dst unix.Stat_t
	if err := unix.Lstat(dir, &dst); err != nil {
		return err
	}
	listing := map[string]entry{}
	inos := map[string]uint64{}
	for _, de := range des {
		var st unix.Stat_t
		p := filepath.Join(dir, de.Name())
		if err := unix.Lstat(p, &st); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // unlinked meanwhile
			}
			return err
		}
		e := entry{mode: st.Mode}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			if e.target, err = os.Readlink(p); err != nil {
				return err
			}
		} else if t := st.Mode & unix.S_IFMT; t != unix.S_IFDIR && t != unix.S_IFREG {
			continue // fifos, sockets, devices: not modelled
		}
		listing[de.Name()] = e
		inos[de.Name()] = st.Ino
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.frozen {
		return nil
	}
	for name, e := range listing {
		e.id = f.liveID(inos[name])
		listing[name] = e
	}
	f.dirs[f.liveID(dst.Ino)] = listing
	f.stats.DirSyncs++
	return nil
}

// Sync makes everything durable, as sync(2) would.
func (f *FS) Sync() error {
	return filepath.WalkDir(f.shadow, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return f.syncDir(p)
		case d.Type().IsRegular():
			file, err := os.Open(p)
			if err != nil {
				return err
			}
			defer file.Close()
			var st unix.Stat_t
			if err := unix.Fstat(int(file.Fd()), &st); err != nil {
				return err
			}
			return f.syncFile(st.Ino, int(file.Fd()))
		}
		return nil
	})
}

// Freeze is the instant of the power cut: no fsync after it counts.
func (f *FS) Freeze() {
	f.mu.Lock()
	f.frozen = true
	f.mu.Unlock()
}

// Cut loses the power: it freezes the durable state (if Freeze was not called),
// unmounts, and leaves in the backing dir exactly what was durable.
func (f *FS) Cut() error {
	f.mu.Lock()
	done := f.cut
	f.cut = true
	f.mu.Unlock()
	if done {
		return nil
	}
	f.Freeze()
	if err := f.unmount(); err != nil {
		return err
	}
	defer os.RemoveAll(f.shadow)
	return f.materialize()
}

// Unmount unmounts cleanly: everything is synced first (a clean shutdown).
func (f *FS) Unmount() error {
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Cut()
}

func (f *FS) unmount() error {
	if f.server == nil {
		return nil
	}
	var err error
	for i := 0; i < 10; i++ {
		if err = f.server.Unmount(); err == nil {
			f.server = nil
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Something still holds it: detach it lazily; the serving loop ends when the
	// last reference goes.
	if derr := syscall.Unmount(f.mountpoint, syscall.MNT_DETACH); derr != nil {
		return fmt.Errorf("powercut: unmount %s: %v; lazy: %v", f.mountpoint, err, derr)
	}
	f.server = nil
	return nil
}

// materialize replaces the backing dir's content with the durable tree.
func (f *FS) materialize() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	tmp := filepath.Join(f.backing, newName)
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return err
	}
	seen := map[uint64]bool{f.rootID: true}
	var build func(id uint64, dir string) error
	build = func(id uint64, dir string) error {
		for name, e := range f.dirs[id] {
			p := filepath.Join(dir, name)
			perm := os.FileMode(e.mode & 0o777)
			switch e.mode & unix.S_IFMT {
			case unix.S_IFDIR:
				if seen[e.id] {
					continue // a second name for a directory: keep the first
				}
				seen[e.id] = true
				if err := os.Mkdir(p, perm); err != nil {
					return err
				}
				if err := build(e.id, p); err != nil {
					return err
				}
				if err := os.Chmod(p, perm); err != nil {
					return err
				}
			case unix.S_IFREG:
				if s := f.files[e.id]; s != nil && s.stored {
					if err := os.Link(filepath.Join(f.store, strconv.FormatUint(e.id, 10)), p); err != nil {
						return err
					}
					continue
				}
				w, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
				if err != nil {
					return err
				}
				w.Close()
			case unix.S_IFLNK:
				if err := os.Symlink(e.target, p); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := build(f.rootID, tmp); err != nil {
		return err
	}
	des, err := os.ReadDir(f.backing)
	if err != nil {
		return err
	}
	for _, de := range des {
		if n := de.Name(); n != newName && n != storeName {
			if err := os.RemoveAll(filepath.Join(f.backing, n)); err != nil {
				return err
			}
		}
	}
	if des, err = os.ReadDir(tmp); err != nil {
		return err
	}
	for _, de := range des {
		if err := os.Rename(filepath.Join(tmp, de.Name()), filepath.Join(f.backing, de.Name())); err != nil {
			return err
		}
	}
	if err := os.Remove(tmp); err != nil {
		return err
	}
	return os.RemoveAll(f.store)
}
