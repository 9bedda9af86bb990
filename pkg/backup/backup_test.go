package backup

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
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

	res, err := Make(data)
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
	if _, err := Make(data); err == nil || !strings.Contains(err.Error(), "not backing up special files") {
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
	if _, err := Make(data); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(res.Path, "version.txt")); string(b) != "3.6.16/etcd3\n" {
		t.Fatalf("new backup not in place: version.txt %q", b)
	}
}
