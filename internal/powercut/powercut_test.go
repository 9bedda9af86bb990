//go:build linux

package powercut

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/etcd-migrate/etcd-migrate/pkg/durable"
)

// mounted mounts a fresh backing dir (filled by fill, if not nil) or skips when FUSE
// cannot be mounted here.
func mounted(t *testing.T, fill func(dir string)) (fsys *FS, backing string) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("FUSE cannot be mounted here: %v", err)
	}
	base := t.TempDir()
	backing = filepath.Join(base, "backing")
	if err := os.Mkdir(backing, 0o755); err != nil {
		t.Fatal(err)
	}
	if fill != nil {
		fill(backing)
	}
	return remount(t, backing), backing
}

func remount(t *testing.T, backing string) *FS {
	t.Helper()
	mnt := backing + ".mnt"
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	fsys, err := Mount(backing, mnt)
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	t.Cleanup(func() { _ = fsys.Cut() })
	return fsys
}

func cut(t *testing.T, fsys *FS) {
	t.Helper()
	if err := fsys.Cut(); err != nil {
		t.Fatalf("cut: %v", err)
	}
}

func write(t *testing.T, path, data string, sync bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func syncDir(t *testing.T, dir string) {
	t.Helper()
	if err := durable.SyncDir(dir); err != nil {
		t.Fatal(err)
	}
}

// content is a file's content after the cut, or "<absent>".
func content(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return "<absent>"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func expect(t *testing.T, path, want string) {
	t.Helper()
	if got := content(t, path); got != want {
		t.Errorf("%s after the cut: %q, want %q", filepath.Base(path), got, want)
	}
}

func fillOld(dir string) {
	_ = os.WriteFile(filepath.Join(dir, "old"), []byte("old data"), 0o644)
	_ = os.Mkdir(filepath.Join(dir, "sub"), 0o755)
}

func TestWriteWithoutFsyncIsLost(t *testing.T) {
	fsys, backing := mounted(t, fillOld)
	m := fsys.Mountpoint()
	expect(t, filepath.Join(m, "old"), "old data")
	write(t, filepath.Join(m, "old"), "new data, never synced", false)
	expect(t, filepath.Join(m, "old"), "new data, never synced") // the live view
	cut(t, fsys)
	expect(t, filepath.Join(backing, "old"), "old data")
}

func TestWriteWithFsyncSurvives(t *testing.T) {
	fsys, backing := mounted(t, fillOld)
	write(t, filepath.Join(fsys.Mountpoint(), "old"), "synced", true)
	cut(t, fsys)
	expect(t, filepath.Join(backing, "old"), "synced")
}

func TestTruncateWithoutFsyncIsLost(t *testing.T) {
	fsys, backing := mounted(t, fillOld)
	if err := os.Truncate(filepath.Join(fsys.Mountpoint(), "old"), 3); err != nil {
		t.Fatal(err)
	}
	cut(t, fsys)
	expect(t, filepath.Join(backing, "old"), "old data")
}

func TestTruncateThenExtendSynced(t *testing.T) {
	fsys, backing := mounted(t, fillOld)
	p := filepath.Join(fsys.Mountpoint(), "old")
	if err := os.Truncate(p, 3); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 8); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cut(t, fsys)
	expect(t, filepath.Join(backing, "old"), "old\x00\x00\x00\x00\x00")
}

func TestCreateWithoutDirFsyncIsUndone(t *testing.T) {
	fsys, backing := mounted(t, fillOld)
	write(t, filepath.Join(fsys.Mountpoint(), "new"), "data synced, name not", true)
	cut(t, fsys)
	expect(t, filepath.Join(backing, "new"), "<absent>")
}

func TestCreateWithFileAndDirFsyncSurvives(t *testing.T) {
	fsys, backing := mounted(t, fillOld)
	m := fsys.Mountpoint()
	write(t, filepath.Join(m, "sub", "new"), "both synced", true)
	syncDir(t, filepath.Join(m, "sub"))
	cut(t, fsys)
	expect(t, filepath.Join(backing, "sub", "new"), "both synced")
}

func TestCreateWithDirFsyncOnlyIsEmpty(t *testing.T) {
	fsys, backing := mounted(t, fillOld)
	m := fsys.Mountpoint()
	write(t, filepath.Join(m, "new"), "data never synced", false)
	syncDir(t, m)
	cut(t, fsys)
	expect(t, filepath.Join(backing, "new"), "")
}

func TestRenameWithoutDirFsyncIsUndone(t *testing.T) {
	fsys, backing := mounted(t, fillOld)
	m := fsys.Mountpoint()
	// The temp-file pattern without the directory fsync: the data is synced, the
	// rename is not.
	write(t, filepath.Join(m, "tmp"), "new version", true)
	syncDir(t, m) // the temp file's create is durable
	if err := os.Rename(filepath.Join(m, "tmp"), filepath.Join(m, "old")); err != nil {
		t.Fatal(err)
	}
	expect(t, filepath.Join(m, "old"), "new version")
	cut(t, fsys)
	expect(t, filepath.Join(backing, "old"), "old data")
	expect(t, filepath.Join(backing, "tmp"), "new version")
}

func TestRenameSyncedFileUnsyncedNewName(t *testing.T) {
	fsys, backing := mounted(t, fillOld)
	m := fsys.Mountpoint()
	write(t, filepath.Join(m, "old"), "synced under the old name", true)
	if err := os.Rename(filepath.Join(m, "old"), filepath.Join(m, "sub", "moved")); err != nil {
		t.Fatal(err)
	}
	syncDir(t, filepath.Join(m, "sub")) // the new name's dir only
	cut(t, fsys)
	// The old dir was not synced: the old name stays; the new dir was: the new
	// name is there too (the strict model keeps each directory's own state).
	expect(t, filepath.Join(backing, "old"), "synced under the old name")
	expect(t, filepath.Join(backing, "sub", "moved"), "synced under the old name")
}

func TestRenameWithBothDirsFsyncedSurvives(t *testing.T) {
	fsys, backing := mounted(t, fillOld)
	m := fsys.Mountpoint()
	if err := durable.WriteFile(filepath.Join(m, "old"), []byte("atomic"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(m, "old"), filepath.Join(m, "sub", "moved")); err != nil {
		t.Fatal(err)
	}
	syncDir(t, m)
	syncDir(t, filepath.Join(m, "sub"))
	cut(t, fsys)
	expect(t, filepath.Join(backing, "old"), "<absent>")
	expect(t, filepath.Join(backing, "sub", "moved"), "atomic")
	if st, err := os.Stat(filepath.Join(backing, "sub", "moved")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("mode after the cut: %v, %v", st.Mode(), err)
	}
}

func TestUnlinkWithoutDirFsyncIsUndone(t *testing.T) {
	fsys, backing := mounted(t, fillOld)
	m := fsys.Mountpoint()
	if err := os.Remove(filepath.Join(m, "old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(m, "sub")); err != nil {
		t.Fatal(err)
	}
	cut(t, fsys)
	expect(t, filepath.Join(backing, "old"), "old data")
	if _, err := os.Stat(filepath.Join(backing, "sub")); err != nil {
		t.Errorf("rmdir without fsync of the parent: %v", err)
	}
}

func TestUnlinkWithDirFsyncSurvives(t *testing.T) {
	fsys, backing := mounted(t, fillOld)
	m := fsys.Mountpoint()
	if err := os.Remove(filepath.Join(m, "old")); err != nil {
		t.Fatal(err)
	}
	syncDir(t, m)
	cut(t, fsys)
	expect(t, filepath.Join(backing, "old"), "<absent>")
}

func TestMkdirNeedsParentFsync(t *testing.T) {
	fsys, backing := mounted(t, nil)
	m := fsys.Mountpoint()
	if err := os.MkdirAll(filepath.Join(m, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(m, "a", "b", "f"), "deep", true)
	syncDir(t, filepath.Join(m, "a", "b"))
	syncDir(t, filepath.Join(m, "a"))
	cut(t, fsys) // the root was not synced: a is lost, and all below it
	if _, err := os.Stat(filepath.Join(backing, "a")); !os.IsNotExist(err) {
		t.Errorf("a after the cut: %v, want absent", err)
	}

	fsys = remount(t, backing)
	m = fsys.Mountpoint()
	if err := os.MkdirAll(filepath.Join(m, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(m, "a", "b", "f"), "deep", true)
	for _, d := range []string{filepath.Join(m, "a", "b"), filepath.Join(m, "a"), m} {
		syncDir(t, d)
	}
	cut(t, fsys)
	expect(t, filepath.Join(backing, "a", "b", "f"), "deep")
}

// The write pattern of etcd's WAL and bbolt: preallocate, pwrite, fdatasync; reads
// through a shared mmap.
func TestPreallocatePwriteFdatasyncMmap(t *testing.T) {
	fsys, backing := mounted(t, nil)
	m := fsys.Mountpoint()
	p := filepath.Join(m, "wal")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, 1<<20); err != nil {
		t.Fatalf("fallocate: %v", err)
	}
	syncDir(t, m)
	rec1 := bytes.Repeat([]byte{1}, 5000)
	rec2 := bytes.Repeat([]byte{2}, 3000)
	if _, err := f.WriteAt(rec1, 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(rec2, 5000); err != nil {
		t.Fatal(err)
	}
	inChild(t, "mmap-read-records", p)
	f.Close()
	cut(t, fsys)
	b, err := os.ReadFile(filepath.Join(backing, "wal"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 1<<20 {
		t.Fatalf("size after the cut: %d, want the preallocated %d", len(b), 1<<20)
	}
	if !bytes.Equal(b[:5000], rec1) || !bytes.Equal(b[5000:8000], make([]byte, 3000)) {
		t.Errorf("after the cut the file holds other than the first, synced record alone")
	}
}

// Hard links stay hard links, and a remount goes on from the durable state.
func TestHardLinksAndRemount(t *testing.T) {
	fsys, backing := mounted(t, fillOld)
	m := fsys.Mountpoint()
	if err := os.Link(filepath.Join(m, "old"), filepath.Join(m, "sub", "link")); err != nil {
		t.Fatal(err)
	}
	syncDir(t, filepath.Join(m, "sub"))
	write(t, filepath.Join(m, "old"), "through one name", true)
	if err := fsys.Unmount(); err != nil { // a clean shutdown: all synced
		t.Fatal(err)
	}
	expect(t, filepath.Join(backing, "sub", "link"), "through one name")
	var a, b unix.Stat_t
	_ = unix.Stat(filepath.Join(backing, "old"), &a)
	_ = unix.Stat(filepath.Join(backing, "sub", "link"), &b)
	if a.Ino != b.Ino {
		t.Errorf("the hard link became a copy")
	}
	fsys = remount(t, backing)
	expect(t, filepath.Join(fsys.Mountpoint(), "sub", "link"), "through one name")
	write(t, filepath.Join(fsys.Mountpoint(), "sub", "link"), "lost", false)
	cut(t, fsys)
	expect(t, filepath.Join(backing, "old"), "through one name")
}

// pkg/durable's SyncTree and CopyFile make what they cover durable under the
// model: a tree written without a single fsync, and a copied file.
func TestDurableSyncTreeAndCopyFile(t *testing.T) {
	fsys, backing := mounted(t, fillOld)
	m := fsys.Mountpoint()
	if err := os.MkdirAll(filepath.Join(m, "tree", "a", "b"), 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(m, "tree", "a", "b", "f"), "deep", false)
	write(t, filepath.Join(m, "tree", "g"), "top", false)
	if err := durable.SyncTree(filepath.Join(m, "tree")); err != nil {
		t.Fatal(err)
	}
	syncDir(t, m) // the tree's own name
	if err := durable.CopyFile(filepath.Join(m, "old"), filepath.Join(m, "sub", "copy"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(m, "tree", "unsynced"), "lost", false)
	cut(t, fsys)
	expect(t, filepath.Join(backing, "tree", "a", "b", "f"), "deep")
	expect(t, filepath.Join(backing, "tree", "g"), "top")
	expect(t, filepath.Join(backing, "tree", "unsynced"), "<absent>")
	expect(t, filepath.Join(backing, "sub", "copy"), "old data")
	if st, err := os.Stat(filepath.Join(backing, "sub", "copy")); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("the copy's mode after the cut: %v, %v", st, err)
	}
}

// Writes through a shared writable mmap reach the file system as writes when the
// kernel writes the pages back (msync, fsync): they follow the same model.
func TestMmapWrites(t *testing.T) {
	fsys, backing := mounted(t, nil)
	m := fsys.Mountpoint()
	for _, name := range []string{"synced", "unsynced"} {
		p := filepath.Join(m, name)
		if err := os.WriteFile(p, make([]byte, 4096), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		inChild(t, "mmap-write-"+name, p)
	}
	syncDir(t, m)
	cut(t, fsys)
	b, _ := os.ReadFile(filepath.Join(backing, "synced"))
	if !bytes.HasPrefix(b, []byte("through the mapping")) || len(b) != 4096 {
		t.Errorf("an mmap write msynced and fsynced is not kept: %q...", b[:min(len(b), 20)])
	}
	b, _ = os.ReadFile(filepath.Join(backing, "unsynced"))
	if !bytes.Equal(b, make([]byte, 4096)) {
		t.Errorf("an mmap write never fsynced is kept: %q...", b[:min(len(b), 20)])
	}
}

// inChild runs an mmap of a file on the mount in a child process. Not in the test
// process, which serves the mount: a page fault there waits for a goroutine of the
// same process to answer it, and a stop-the-world of the Go runtime waits for the
// faulting thread, a deadlock. (migrate and etcd are processes of their own.)
func inChild(t *testing.T, op, path string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "POWERCUT_CHILD_OP="+op, "POWERCUT_CHILD_PATH="+path)
	if out, err := cmd.CombinedOutput(); err != nil || !bytes.Contains(out, []byte("child done")) {
		t.Fatalf("child %s on %s: %v\n%s", op, path, err, out)
	}
}

// TestChildHelper is inChild's child.
func TestChildHelper(t *testing.T) {
	op, path := os.Getenv("POWERCUT_CHILD_OP"), os.Getenv("POWERCUT_CHILD_PATH")
	if op == "" {
		t.Skip("the child process of the mmap tests")
	}
	prot, size := syscall.PROT_READ, 8192
	if op != "mmap-read-records" {
		prot, size = syscall.PROT_READ|syscall.PROT_WRITE, 4096
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mm, err := syscall.Mmap(int(f.Fd()), 0, size, prot, syscall.MAP_SHARED)
	if err != nil {
		t.Fatalf("mmap: %v", err)
	}
	switch op {
	case "mmap-read-records":
		if !bytes.Equal(mm[:5000], bytes.Repeat([]byte{1}, 5000)) || !bytes.Equal(mm[5000:8000], bytes.Repeat([]byte{2}, 3000)) {
			t.Fatalf("mmap does not read what was written")
		}
	case "mmap-write-synced", "mmap-write-unsynced":
		copy(mm, "through the mapping")
		if op == "mmap-write-synced" {
			if err := unix.Msync(mm, unix.MS_SYNC); err != nil {
				t.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	default:
		t.Fatalf("unknown op %s", op)
	}
	if err := syscall.Munmap(mm); err != nil {
		t.Fatal(err)
	}
	fmt.Println("child done")
}
