package etcdproc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPrivateTLSDir: the key pair goes to a 0700 dir in $TMPDIR, else (a read-only
// root file system) to the fallback, and remove takes it away.
func TestPrivateTLSDir(t *testing.T) {
	fallback := t.TempDir()
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "missing"))
	pt, err := newPrivateTLS(stepUser, fallback)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(pt.dir) != fallback || !strings.HasPrefix(filepath.Base(pt.dir), ".etcd-migrate-tls-") {
		t.Fatalf("TLS dir %s, want one in %s", pt.dir, fallback)
	}
	for _, f := range []string{pt.dir, pt.keyFile} {
		fi, err := os.Stat(f)
		if err != nil || fi.Mode().Perm()&0o077 != 0 {
			t.Fatalf("%s: %v, mode %v: want no group/other access", f, err, fi.Mode())
		}
	}
	pt.remove()
	if _, err := os.Stat(pt.dir); !os.IsNotExist(err) {
		t.Fatalf("TLS dir left behind: %v", err)
	}
	if _, err := newPrivateTLS(stepUser); err == nil {
		t.Fatal("no temp dir and no fallback: want an error")
	}
}
