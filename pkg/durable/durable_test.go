package durable

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "some.file")
	if err := WriteFile(path, []byte("hello\n"), 0o600); err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "hello\n" {
		t.Errorf("content = %q, %v; want %q", b, err, "hello\n")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".some.file.tmp-*")); len(m) != 0 {
		t.Errorf("temp files left behind: %v", m)
	}
}

func TestWriteFileMissingDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "dir", "version.txt")
	err := WriteFile(path, []byte("x"), 0o644)
	if err == nil {
		t.Fatal("WriteFile into a missing directory succeeded")
	}
	if !strings.HasPrefix(err.Error(), "write "+path+": ") {
		t.Errorf("error %q does not start with %q", err, "write "+path+": ")
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %q does not wrap fs.ErrNotExist", err)
	}
}

func TestWriteFileTargetIsDir(t *testing.T) {
	// The rename fails when the target is a non-empty directory; the temp file
	// must not be left behind.
	dir := t.TempDir()
	path := filepath.Join(dir, "target")
	if err := os.MkdirAll(filepath.Join(path, "child"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := WriteFile(path, []byte("x"), 0o644)
	if err == nil {
		t.Fatal("WriteFile over a non-empty directory succeeded")
	}
	if !strings.HasPrefix(err.Error(), "rename ") || !strings.Contains(err.Error(), " to "+path+": ") {
		t.Errorf("error %q, want a rename error naming %s", err, path)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".target.tmp-*")); len(m) != 0 {
		t.Errorf("temp files left behind: %v", m)
	}
}

func TestSyncDir(t *testing.T) {
	if err := SyncDir(t.TempDir()); err != nil {
		t.Errorf("SyncDir: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	err := SyncDir(missing)
	if err == nil || !strings.Contains(err.Error(), "fsync dir "+missing) {
		t.Errorf("SyncDir(missing) = %v, want error naming %s", err, missing)
	}
}
