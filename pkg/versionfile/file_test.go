package versionfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeRaw(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPath(t *testing.T) {
	if got, want := Path("/var/etcd/data"), filepath.Join("/var/etcd/data", "version.txt"); got != want {
		t.Errorf("Path = %q, want %q", got, want)
	}
}

func TestReadMissing(t *testing.T) {
	for _, name := range []string{"existing dir", "missing dir"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if name == "missing dir" {
				dir = filepath.Join(dir, "nope")
			}
			p, err := Read(dir)
			if !errors.Is(err, ErrNotExist) {
				t.Fatalf("Read = %v, %v; want error wrapping ErrNotExist", p, err)
			}
			if !strings.Contains(err.Error(), Path(dir)) {
				t.Errorf("error %q does not name %s", err, Path(dir))
			}
			if p.Version != nil {
				t.Errorf("Read returned pair %v with error", p)
			}
		})
	}
}

func TestReadValid(t *testing.T) {
	tests := []struct{ content, want string }{
		{"3.5.35/etcd3\n", "3.5.35/etcd3"},
		{"3.5.35/etcd3", "3.5.35/etcd3"},
		{"2.2.1/etcd2\n", "2.2.1/etcd2"},
		{"  3.4.13/etcd3 \r\n", "3.4.13/etcd3"},
		// Exactly maxFileSize bytes is still accepted.
		{"3.6.16/etcd3\n" + strings.Repeat(" ", 64-len("3.6.16/etcd3\n")), "3.6.16/etcd3"},
	}
	for _, tc := range tests {
		dir := t.TempDir()
		writeRaw(t, Path(dir), tc.content)
		p, err := Read(dir)
		if err != nil {
			t.Errorf("Read(%q): %v", tc.content, err)
			continue
		}
		if p.String() != tc.want {
			t.Errorf("Read(%q) = %s, want %s", tc.content, p, tc.want)
		}
	}
}

func TestReadTooLong(t *testing.T) {
	for _, content := range []string{
		"3.6.16/etcd3\n" + strings.Repeat(" ", 65-len("3.6.16/etcd3\n")), // 65 bytes
		strings.Repeat("3.5.35/etcd3\n", 100),
	} {
		dir := t.TempDir()
		writeRaw(t, Path(dir), content)
		_, err := Read(dir)
		if err == nil {
			t.Fatalf("Read of %d-byte file succeeded", len(content))
		}
		for _, w := range []string{Path(dir), "is longer than 64 bytes", "fix or remove it"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Read of %d-byte file: error %q does not contain %q", len(content), err, w)
			}
		}
		if errors.Is(err, ErrNotExist) {
			t.Errorf("error %q wraps ErrNotExist", err)
		}
	}
}

func TestReadMalformed(t *testing.T) {
	tests := []struct{ content, want string }{
		{"", "empty version"},
		{"\n", "empty version"},
		{"3.5/etcd3\n", `invalid etcd version "3.5"`},
		{"3.5.35\n", `invalid version pair "3.5.35": missing /`},
		{"3.5.35/etcd4\n", `unknown storage "etcd4"`},
		{"2.3.7/etcd3\n", "etcd 2.3.7 has no etcd3 storage"},
		{"\x00\x01\x02", "missing /"},
	}
	for _, tc := range tests {
		dir := t.TempDir()
		writeRaw(t, Path(dir), tc.content)
		_, err := Read(dir)
		if err == nil {
			t.Errorf("Read(%q) succeeded, want error", tc.content)
			continue
		}
		for _, w := range []string{Path(dir) + ": ", tc.want, "fix or remove it (migrate then detects the state from the data)"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Read(%q): error %q does not contain %q", tc.content, err, w)
			}
		}
		if errors.Is(err, ErrNotExist) {
			t.Errorf("Read(%q): error %q wraps ErrNotExist", tc.content, err)
		}
	}
}

func TestReadDirectoryInsteadOfFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(Path(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Read(dir)
	if err == nil {
		t.Fatal("Read with version.txt being a directory succeeded")
	}
	if !strings.Contains(err.Error(), "read "+Path(dir)) {
		t.Errorf("error %q does not contain %q", err, "read "+Path(dir))
	}
	if errors.Is(err, ErrNotExist) {
		t.Errorf("error %q wraps ErrNotExist", err)
	}
}

func tmpLeftovers(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, ".version.txt.tmp-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, MustPair("3.6.16/etcd3")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	b, err := os.ReadFile(Path(dir))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "3.6.16/etcd3\n" {
		t.Errorf("content = %q, want %q", b, "3.6.16/etcd3\n")
	}
	fi, err := os.Stat(Path(dir))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 || !fi.Mode().IsRegular() {
		t.Errorf("mode = %v, want -rw-r--r--", fi.Mode())
	}
	if m := tmpLeftovers(t, dir); len(m) != 0 {
		t.Errorf("temp files left behind: %v", m)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "version.txt" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("dir holds %v, want only version.txt", names)
	}
	p, err := Read(dir)
	if err != nil || p.String() != "3.6.16/etcd3" {
		t.Errorf("Read after Write = %v, %v; want 3.6.16/etcd3", p, err)
	}
}

func TestWriteOverwrites(t *testing.T) {
	dir := t.TempDir()
	writeRaw(t, Path(dir), "3.4.13/etcd3\n")
	if err := os.Chmod(Path(dir), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"3.5.35/etcd3", "2.2.1/etcd2", "3.7.3/etcd3"} {
		if err := Write(dir, MustPair(s)); err != nil {
			t.Fatalf("Write(%s): %v", s, err)
		}
		b, err := os.ReadFile(Path(dir))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != s+"\n" {
			t.Errorf("after Write(%s) content = %q", s, b)
		}
		fi, err := os.Stat(Path(dir))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("after Write(%s) mode = %v, want 0644", s, fi.Mode().Perm())
		}
	}
	if m := tmpLeftovers(t, dir); len(m) != 0 {
		t.Errorf("temp files left behind: %v", m)
	}
}

func TestWriteInvalidPairKeepsOldFile(t *testing.T) {
	tests := []struct {
		p    Pair
		want string
	}{
		{Pair{Version: MustVersion("2.3.7"), Storage: StorageEtcd3}, `invalid version pair "2.3.7/etcd3": etcd 2.3.7 has no etcd3 storage (it starts with 3.0.0)`},
		{Pair{Version: MustVersion("1.0.0"), Storage: StorageEtcd2}, `invalid version pair "1.0.0/etcd2": etcd versions start at 2.0.0`},
	}
	for _, tc := range tests {
		dir := t.TempDir()
		writeRaw(t, Path(dir), "3.4.13/etcd3\n")
		err := Write(dir, tc.p)
		if err == nil {
			t.Errorf("Write(%v) succeeded, want error", tc.p)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("Write(%v) error = %q, want %q", tc.p, err, tc.want)
		}
		b, rerr := os.ReadFile(Path(dir))
		if rerr != nil || string(b) != "3.4.13/etcd3\n" {
			t.Errorf("after failed Write(%v) content = %q, %v; want unchanged", tc.p, b, rerr)
		}
		if m := tmpLeftovers(t, dir); len(m) != 0 {
			t.Errorf("temp files left behind: %v", m)
		}
	}
}

func TestWriteIntoMissingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	err := Write(dir, MustPair("3.5.35/etcd3"))
	if err == nil {
		t.Fatal("Write into a missing dir succeeded")
	}
	if !strings.Contains(err.Error(), "write "+Path(dir)) {
		t.Errorf("error %q does not contain %q", err, "write "+Path(dir))
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %q does not wrap fs.ErrNotExist", err)
	}
}

func TestWriteNilVersion(t *testing.T) {
	if err := Write(t.TempDir(), Pair{}); err == nil || err.Error() != "invalid version pair: no version" {
		t.Fatalf("Write(Pair{}) = %v", err)
	}
}

// A pair whose patch is unknown prints as major.minor.x, equals no exact pair,
// and is never written to version.txt.
func TestPatchUnknownPair(t *testing.T) {
	p := Pair{Version: MustVersion("3.4.0"), Storage: StorageEtcd3, PatchUnknown: true}
	if p.String() != "3.4.x/etcd3" {
		t.Errorf("String = %q", p.String())
	}
	if p.Equal(MustPair("3.4.0/etcd3")) || MustPair("3.4.0/etcd3").Equal(p) || !p.Equal(p) {
		t.Errorf("a pair with an unknown patch equals another")
	}
	dir := t.TempDir()
	if err := Write(dir, p); err == nil || !strings.Contains(err.Error(), `invalid version pair "3.4.x/etcd3": version.txt records an exact version`) {
		t.Fatalf("Write(3.4.x) = %v", err)
	}
	if _, err := os.Stat(Path(dir)); !os.IsNotExist(err) {
		t.Fatalf("version.txt written: %v", err)
	}
}
