package memberdir

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/etcd-migrate/etcd-migrate/pkg/datadir"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// dataDir makes a data dir whose member dir holds a file naming which one it is.
func dataDir(t *testing.T, version, member string) string {
	t.Helper()
	d := t.TempDir()
	os.MkdirAll(filepath.Join(d, "member"), 0o700)
	os.WriteFile(filepath.Join(d, "member", "id"), []byte(member), 0o600)
	if err := versionfile.Write(d, versionfile.MustPair(version)); err != nil {
		t.Fatal(err)
	}
	return d
}

func memberID(t *testing.T, d string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d, "member", "id"))
	if err != nil {
		t.Fatalf("member dir: %v", err)
	}
	return string(b)
}

// begin starts a replacement to 3.4.13/etcd3 and builds a new member dir "new".
func begin(t *testing.T, d string) *Work {
	t.Helper()
	w, err := Begin(d, "test", versionfile.MustPair("3.4.13/etcd3"))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(w.Path("out/member"), 0o700)
	os.WriteFile(w.Path("out/member/id"), []byte("new"), 0o600)
	return w
}

func noWorkDirs(t *testing.T, d string) {
	t.Helper()
	if ws := workDirs(d); len(ws) != 0 {
		t.Fatalf("work dirs left: %v", ws)
	}
}

func TestRecover(t *testing.T) {
	t.Run("nothing interrupted", func(t *testing.T) {
		d := dataDir(t, "3.5.35/etcd3", "orig")
		if rec, err := Recover(d); rec || err != nil {
			t.Fatalf("Recover = %v, %v", rec, err)
		}
	})
	t.Run("swapped but not recorded: original restored", func(t *testing.T) {
		d := dataDir(t, "3.5.35/etcd3", "orig")
		w := begin(t, d)
		if err := w.Replace(w.Path("out/member")); err != nil {
			t.Fatal(err)
		}
		if memberID(t, d) != "new" {
			t.Fatal("Replace did not install the new member dir")
		}
		if rec, err := Recover(d); !rec || err != nil {
			t.Fatalf("Recover = %v, %v", rec, err)
		}
		if memberID(t, d) != "orig" {
			t.Fatalf("member dir is %q after recovery, want the original", memberID(t, d))
		}
		noWorkDirs(t, d)
	})
	t.Run("crash between the two renames: original restored", func(t *testing.T) {
		d := dataDir(t, "3.5.35/etcd3", "orig")
		w := begin(t, d)
		if err := os.Rename(filepath.Join(d, "member"), w.Path(oldMember)); err != nil {
			t.Fatal(err)
		}
		if _, err := datadir.Detect(d); err == nil {
			t.Fatal("Detect must refuse a data dir whose member dir sits in a work dir")
		}
		if rec, err := Recover(d); !rec || err != nil {
			t.Fatalf("Recover = %v, %v", rec, err)
		}
		if memberID(t, d) != "orig" {
			t.Fatalf("member dir is %q after recovery", memberID(t, d))
		}
		noWorkDirs(t, d)
	})
	t.Run("recorded: the new member dir stays", func(t *testing.T) {
		d := dataDir(t, "3.5.35/etcd3", "orig")
		w := begin(t, d)
		if err := w.Replace(w.Path("out/member")); err != nil {
			t.Fatal(err)
		}
		versionfile.Write(d, versionfile.MustPair("3.4.13/etcd3"))
		if rec, err := Recover(d); !rec || err != nil {
			t.Fatalf("Recover = %v, %v", rec, err)
		}
		if memberID(t, d) != "new" {
			t.Fatalf("member dir is %q, want the recorded new one", memberID(t, d))
		}
		noWorkDirs(t, d)
	})
	t.Run("never swapped: work dir dropped, member untouched", func(t *testing.T) {
		d := dataDir(t, "3.5.35/etcd3", "orig")
		begin(t, d)
		if rec, err := Recover(d); !rec || err != nil {
			t.Fatalf("Recover = %v, %v", rec, err)
		}
		if memberID(t, d) != "orig" {
			t.Fatal("member dir changed")
		}
		noWorkDirs(t, d)
	})
}
