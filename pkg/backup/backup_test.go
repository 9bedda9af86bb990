package backup

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

func TestMake(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(filepath.Join(data, "member", "wal"), 0o700)
	os.WriteFile(filepath.Join(data, "version.txt"), []byte("3.5.35/etcd3\n"), 0o644)
	// A preallocated-WAL-like file: data, a long hole, data.
	wal := filepath.Join(data, "member", "wal", "0.wal")
	f, _ := os.Create(wal)
	f.Write([]byte("head"))
	f.WriteAt([]byte("tail"), 8<<20)
	f.Close()
	os.MkdirAll(filepath.Join(data, ".migrate-v2tov3"), 0o700) // scratch: not copied

	res, err := Make(context.Background(), data, Record{Before: "3.5.35/etcd3", Target: "3.6.16/etcd3"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Path != data+".bak" || res.Files != 2 {
		t.Fatalf("result %+v", res)
	}
	if res.Bytes > 2<<20 {
		t.Fatalf("copied %d bytes: holes were written out", res.Bytes)
	}
	fi, err := os.Stat(res.Path)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("backup dir: %v %v", fi, err)
	}
	for _, rel := range []string{"version.txt", "member/wal/0.wal"} {
		a, _ := os.ReadFile(filepath.Join(data, rel))
		b, err := os.ReadFile(filepath.Join(res.Path, rel))
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("%s differs in the backup (%v)", rel, err)
		}
	}
	if _, err := os.Stat(filepath.Join(res.Path, ".migrate-v2tov3")); err == nil {
		t.Fatal("a work dir was backed up")
	}

	// A failing backup leaves the previous one untouched and no temp dir behind.
	if err := syscall.Mkfifo(filepath.Join(data, "fifo"), 0o600); err != nil {
		t.Skip("no mkfifo here:", err)
	}
	os.WriteFile(filepath.Join(data, "version.txt"), []byte("3.6.16/etcd3\n"), 0o644)
	if _, err := Make(context.Background(), data, Record{Before: "x"}); err == nil || !strings.Contains(err.Error(), "not backing up special files") {
		t.Fatalf("Make with a fifo = %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(res.Path, "version.txt")); string(b) != "3.5.35/etcd3\n" {
		t.Fatalf("previous backup changed: version.txt %q", b)
	}
	left, _ := filepath.Glob(data + ".bak.tmp-*")
	if len(left) != 0 {
		t.Fatalf("temp dirs left: %v", left)
	}
	os.Remove(filepath.Join(data, "fifo"))
	if _, err := Make(context.Background(), data, Record{Before: "3.6.16/etcd3", Target: "3.7.3/etcd3"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(res.Path, "version.txt")); string(b) != "3.6.16/etcd3\n" {
		t.Fatalf("new backup not in place: version.txt %q", b)
	}
}

func newData(t *testing.T) string {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(filepath.Join(data, "member", "snap"), 0o700)
	os.WriteFile(filepath.Join(data, "version.txt"), []byte("3.4.13/etcd3\n"), 0o644)
	os.WriteFile(filepath.Join(data, "member", "snap", "db"), bytes.Repeat([]byte("db"), 3<<20), 0o600)
	return data
}

// TestRecordLifecycle: a new backup is pending (kept by every run) until Complete;
// its record is written durably beside it, 0600.
func TestRecordLifecycle(t *testing.T) {
	data := newData(t)
	if s := Inspect(data); s.Exists || s.Pending() || s.Record != nil {
		t.Fatalf("before any backup: %+v", s)
	}
	if ok, err := Complete(data, "3.7.3/etcd3"); ok || err != nil {
		t.Fatalf("Complete without a backup = %v, %v", ok, err)
	}
	if _, err := Make(context.Background(), data, Record{Before: "3.4.13/etcd3", Target: "3.7.3/etcd3"}); err != nil {
		t.Fatal(err)
	}
	s := Inspect(data)
	if !s.Exists || !s.Pending() || s.Record.Before != "3.4.13/etcd3" || s.Record.Target != "3.7.3/etcd3" || s.Record.Taken.IsZero() {
		t.Fatalf("after Make: %+v %+v", s, s.Record)
	}
	fi, err := os.Stat(RecordPath(data))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("record %s: %v %v", RecordPath(data), fi, err)
	}
	if ok, err := Complete(data, "3.6.16/etcd3"); !ok || err != nil {
		t.Fatalf("Complete = %v, %v", ok, err)
	}
	s = Inspect(data)
	if s.Pending() || !s.Record.Completed || s.Record.CompletedAt != "3.6.16/etcd3" || s.Record.Before != "3.4.13/etcd3" {
		t.Fatalf("after Complete: %+v", s.Record)
	}
	// The next Make starts a new pending record.
	if _, err := Make(context.Background(), data, Record{Before: "3.6.16/etcd3", Target: "3.7.3/etcd3"}); err != nil {
		t.Fatal(err)
	}
	if s := Inspect(data); !s.Pending() || s.Record.Before != "3.6.16/etcd3" || s.Record.CompletedAt != "" {
		t.Fatalf("after a second Make: %+v", s.Record)
	}
	// A record without its backup (moved away to restore it) is not pending.
	os.Rename(Path(data), data+".restored")
	if s := Inspect(data); s.Pending() {
		t.Fatalf("pending without a backup dir: %+v", s)
	}
	// A damaged record: not pending, the error says why.
	os.Rename(data+".restored", Path(data))
	os.WriteFile(RecordPath(data), []byte("{"), 0o600)
	if s := Inspect(data); s.Pending() || s.RecordErr == nil {
		t.Fatalf("damaged record: %+v", s)
	}
}

// TestCleanStale: copies a killed backup left are removed; a previous backup set
// aside by a copy cut short between its renames is put back.
func TestCleanStale(t *testing.T) {
	data := newData(t)
	if _, err := Make(context.Background(), data, Record{Before: "3.4.13/etcd3", Target: "3.5.35/etcd3"}); err != nil {
		t.Fatal(err)
	}
	stale := Path(data) + ".tmp-123"
	os.MkdirAll(filepath.Join(stale, "member"), 0o700)
	os.WriteFile(filepath.Join(stale, "member", "half"), []byte("x"), 0o600)
	recTmp := filepath.Join(filepath.Dir(data), ".data.bak.json.tmp-9")
	os.WriteFile(recTmp, []byte("{"), 0o600)
	done, err := CleanStale(data)
	if err != nil || len(done) != 2 {
		t.Fatalf("CleanStale = %v, %v", done, err)
	}
	for _, p := range []string{stale, recTmp} {
		if _, err := os.Lstat(p); err == nil {
			t.Fatalf("%s left", p)
		}
	}
	if !Inspect(data).Pending() {
		t.Fatal("the backup itself was touched")
	}

	// Cut short after the previous backup was set aside: it goes back.
	os.Rename(Path(data), Path(data)+".old")
	if done, err := CleanStale(data); err != nil || len(done) != 1 || !strings.Contains(done[0], "put back") {
		t.Fatalf("CleanStale = %v, %v", done, err)
	}
	if b, err := os.ReadFile(filepath.Join(Path(data), "version.txt")); err != nil || string(b) != "3.4.13/etcd3\n" {
		t.Fatalf("backup not put back: %q %v", b, err)
	}
	// Cut short after the new one took its place: the old one goes.
	os.MkdirAll(Path(data)+".old", 0o700)
	if done, err := CleanStale(data); err != nil || len(done) != 1 {
		t.Fatalf("CleanStale = %v, %v", done, err)
	}
	if _, err := os.Lstat(Path(data) + ".old"); err == nil {
		t.Fatal(".old left")
	}
	if done, err := CleanStale(data); err != nil || len(done) != 0 {
		t.Fatalf("CleanStale on a clean parent = %v, %v", done, err)
	}
}

// TestMakeCancelled: a signal (ctx done) during the copy stops it; the previous
// backup and its record stay as they were, no temp copy is left.
func TestMakeCancelled(t *testing.T) {
	data := newData(t)
	if _, err := Make(context.Background(), data, Record{Before: "3.4.13/etcd3", Target: "3.5.35/etcd3"}); err != nil {
		t.Fatal(err)
	}
	Complete(data, "3.5.35/etcd3")
	os.WriteFile(filepath.Join(data, "version.txt"), []byte("3.5.35/etcd3\n"), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Make(ctx, data, Record{Before: "3.5.35/etcd3", Target: "3.6.16/etcd3"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Make after cancel = %v", err)
	}
	s := Inspect(data)
	if s.Record.Before != "3.4.13/etcd3" || !s.Record.Completed {
		t.Fatalf("record changed: %+v", s.Record)
	}
	if b, _ := os.ReadFile(filepath.Join(Path(data), "version.txt")); string(b) != "3.4.13/etcd3\n" {
		t.Fatalf("backup changed: %q", b)
	}
	if left, _ := filepath.Glob(Path(data) + ".tmp-*"); len(left) != 0 {
		t.Fatalf("temp copies left: %v", left)
	}
}

// dataFiles are the files writeData writes, relative to the data dir.
var dataFiles = []string{"version.txt", "member/snap/db", "member/wal/0000000000000000-0000000000000000.wal"}

// writeData writes a data dir in root, fsynced: a db of 16 MiB of data and a 64 MiB
// WAL segment whose first MiB is written, the rest a hole (as etcd preallocates
// it). It returns the dir, its bytes of data and its files' total size.
func writeData(t *testing.T, root string) (string, int64, int64) {
	t.Helper()
	data := filepath.Join(root, "data")
	rnd := rand.NewChaCha8([32]byte{1})
	contents := [][]byte{[]byte("3.5.35/etcd3\n"), make([]byte, 16<<20), make([]byte, 1<<20)}
	rnd.Read(contents[1])
	rnd.Read(contents[2])
	var dataBytes, size int64
	for i, rel := range dataFiles {
		p := filepath.Join(data, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.Write(contents[i])
		if err == nil && strings.HasSuffix(rel, ".wal") {
			err = f.Truncate(64 << 20)
		}
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(p)
		dataBytes, size = dataBytes+int64(len(contents[i])), size+fi.Size()
	}
	return data, dataBytes, size
}

func sameContents(t *testing.T, data, backup string) {
	t.Helper()
	for _, rel := range dataFiles {
		a, _ := os.ReadFile(filepath.Join(data, rel))
		b, err := os.ReadFile(filepath.Join(backup, rel))
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("%s differs in the backup (%v)", rel, err)
		}
	}
}

// countClones counts the clones tried; with fail set they fail with it.
func countClones(t *testing.T, fail error) *int {
	n, orig := new(int), cloneFn
	cloneFn = func(out, in *os.File) error {
		*n++
		if fail != nil {
			return fail
		}
		return orig(out, in)
	}
	t.Cleanup(func() { cloneFn = orig })
	return n
}

// TestMakeClones: on a filesystem with reflinks (XFS on a loop device here) every
// file is cloned: no data copied, next to no space used.
func TestMakeClones(t *testing.T) {
	mnt := etcdtest.MountXFS(t, 1<<30)
	data, dataBytes, size := writeData(t, mnt)
	before := usedBytes(t, mnt)
	res, err := Make(context.Background(), data, Record{Before: "3.5.35/etcd3"})
	if err != nil {
		t.Fatal(err)
	}
	grew := usedBytes(t, mnt) - before
	t.Logf("%+v; used space grew by %d bytes for %d bytes of data", *res, grew, dataBytes)
	n := len(dataFiles)
	if res.Files != n || res.Cloned != n || res.ClonedBytes != size || res.Bytes != 0 {
		t.Fatalf("want %d files cloned (%d bytes), none copied: %+v", n, size, res)
	}
	sameContents(t, data, res.Path)
	if grew > dataBytes/16 {
		t.Fatalf("used space grew by %d bytes for %d bytes of data: copied, not cloned", grew, dataBytes)
	}
}

// TestMakeCopies: where the filesystem cannot clone (ext4, tmpfs) every file is
// copied, keeping holes, after a single clone try.
func TestMakeCopies(t *testing.T) {
	root := t.TempDir()
	if cloneable(t, root) {
		t.Skipf("%s can clone (reflinks): TestMakeClones covers it", root)
	}
	tries := countClones(t, nil)
	data, dataBytes, _ := writeData(t, root)
	res, err := Make(context.Background(), data, Record{Before: "3.5.35/etcd3"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != len(dataFiles) || res.Cloned != 0 || res.ClonedBytes != 0 || res.Bytes != dataBytes || *tries != 1 {
		t.Fatalf("want %d files copied (%d bytes) after 1 clone try: %+v, %d tries", len(dataFiles), dataBytes, res, *tries)
	}
	sameContents(t, data, res.Path)
	fi, err := os.Stat(filepath.Join(res.Path, dataFiles[2]))
	if err != nil {
		t.Fatal(err)
	}
	if used := fi.Sys().(*syscall.Stat_t).Blocks * 512; used > 2<<20 {
		t.Fatalf("the WAL's copy takes %d bytes on disk: its hole was written out", used)
	}
}

// TestMakeCloneError: a clone failing otherwise than "not supported here" fails
// the backup, naming the file.
func TestMakeCloneError(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("clones are tried on Linux only")
	}
	data := newData(t)
	countClones(t, syscall.EIO)
	_, err := Make(context.Background(), data, Record{Before: "3.4.13/etcd3"})
	if !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), filepath.Join(data, "member", "snap", "db")) {
		t.Fatalf("Make with clones failing with EIO = %v", err)
	}
	if left, _ := filepath.Glob(Path(data) + "*"); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// cloneable reports whether files in dir can be cloned.
func cloneable(t *testing.T, dir string) bool {
	a, b := filepath.Join(dir, "probe-a"), filepath.Join(dir, "probe-b")
	defer os.Remove(a)
	defer os.Remove(b)
	if err := os.WriteFile(a, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(b)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	return cloneFile(out, in) == nil
}

func usedBytes(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks-st.Bfree) * int64(st.Bsize)
}

// TestMakeInsideAMountedDataDir: a data dir that is a mount of its own (kubeadm's
// static pod mounts only /var/lib/etcd) keeps its backup inside, under
// .etcd-migrate-backup, which the copy skips; a bind mount of the parent's own
// filesystem counts as one. Needs root to mount (CI runs as root).
func TestMakeInsideAMountedDataDir(t *testing.T) {
	for _, how := range []string{"tmpfs", "bind"} {
		t.Run(how, func(t *testing.T) {
			parent := t.TempDir()
			data := filepath.Join(parent, "data")
			os.Mkdir(data, 0o700)
			if OwnMount(data) {
				t.Fatalf("%s is not mounted yet, but OwnMount says it is", data)
			}
			if Path(data) != data+".bak" {
				t.Fatalf("Path before the mount = %s", Path(data))
			}
			var err error
			if how == "tmpfs" {
				err = unix.Mount("tmpfs", data, "tmpfs", 0, "size=64m")
			} else {
				src := filepath.Join(parent, "src")
				os.Mkdir(src, 0o700)
				err = unix.Mount(src, data, "", unix.MS_BIND, "")
			}
			if err != nil {
				t.Skipf("SKIPPED: cannot mount a %s (needs root): %v", how, err)
			}
			t.Cleanup(func() { _ = unix.Unmount(data, unix.MNT_DETACH) })
			os.MkdirAll(filepath.Join(data, "member", "snap"), 0o700)
			os.WriteFile(filepath.Join(data, "member", "snap", "db"), []byte("db"), 0o600)
			os.WriteFile(filepath.Join(data, "version.txt"), []byte("3.5.35/etcd3\n"), 0o644)
			want := filepath.Join(data, ".etcd-migrate-backup", "data.bak")
			if !OwnMount(data) || Path(data) != want {
				t.Fatalf("mounted: OwnMount %v, Path %s; want %s", OwnMount(data), Path(data), want)
			}
			for i := 0; i < 2; i++ { // the second copy must not take in the first
				res, err := Make(context.Background(), data, Record{Before: "3.5.35/etcd3", Target: "3.6.16/etcd3"})
				if err != nil {
					t.Fatal(err)
				}
				if res.Path != want || res.Files != 2 {
					t.Fatalf("copy %d: %+v", i, res)
				}
				if _, err := Complete(data, "3.6.16/etcd3"); err != nil {
					t.Fatal(err)
				}
			}
			if b, err := os.ReadFile(filepath.Join(want, "member", "snap", "db")); err != nil || string(b) != "db" {
				t.Fatalf("backup db: %q, %v", b, err)
			}
			if _, err := os.Stat(filepath.Join(want, ".etcd-migrate-backup")); !os.IsNotExist(err) {
				t.Fatalf("the backup holds the backup dir: %v", err)
			}
			if st := Inspect(data); !st.Exists || st.Record == nil || !st.Record.Completed {
				t.Fatalf("Inspect: %+v", st)
			}
			if _, err := os.Stat(data + ".bak"); !os.IsNotExist(err) {
				t.Fatalf("a backup beside the mounted data dir: %v", err)
			}
		})
	}
}
