package migrate

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestCheckExtraArgFiles(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok.crt")
	os.WriteFile(ok, []byte("x"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--peer-cert-file", ok, "--peer-client-cert-auth"}, ""},
		{[]string{"--peer-key-file=" + dir + "/missing.key"}, "--peer-key-file=" + dir + "/missing.key: no such file or directory"},
		{[]string{"--peer-trusted-ca-file", dir}, "--peer-trusted-ca-file=" + dir + " is a directory, not a file"},
		{[]string{"--peer-cert-file="}, "--peer-cert-file has no path"},
		{[]string{"--peer-key-file", "--x"}, "--peer-key-file=--x: no such file or directory"},
	} {
		err := checkExtraArgFiles(tc.args, "ETCD_CREDS (--etcd-server-extra-args)")
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.args, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: error %v, want it to contain %q", tc.args, err, tc.want)
		}
	}
}

func TestResolveDataDir(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	os.Mkdir(real, 0o700)
	link := filepath.Join(dir, "link")
	os.Symlink(real, link)
	dangling := filepath.Join(dir, "dangling")
	os.Symlink(filepath.Join(dir, "gone"), dangling)
	realResolved, _ := filepath.EvalSymlinks(real)
	for in, want := range map[string]string{
		real:                           realResolved,
		link:                           realResolved,
		filepath.Join(dir, "new"):      filepath.Join(dir, "new"),
		filepath.Join(link, "sub-new"): filepath.Join(link, "sub-new"),
	} {
		if got, err := resolveDataDir(in); err != nil || got != want {
			t.Errorf("resolveDataDir(%s) = %s, %v; want %s", in, got, err, want)
		}
	}
	if _, err := resolveDataDir(dangling); err == nil || !strings.Contains(err.Error(), "is a symbolic link to "+filepath.Join(dir, "gone")+", which does not exist") {
		t.Errorf("dangling link: %v", err)
	}
}

func TestCheckBinaryVersions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("shell scripts")
	}
	dir := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755)
		return p
	}
	good := script("etcd-3.5.35", "echo 'etcd Version: 3.5.35'; echo 'Git SHA: x'\n")
	goodCtl := script("etcdctl-3.5.35", "[ \"$ETCDCTL_API\" = 3 ] && echo 'etcdctl version: 3.5.35'\n")
	wrong := script("etcd-3.6.16", "echo 'etcd Version: 3.5.35'\n")
	silent := script("etcd-3.7.3", "exit 3\n")
	if err := checkBinaryVersions([]string{good, goodCtl, good}); err != nil {
		t.Fatalf("good binaries: %v", err)
	}
	if err := checkBinaryVersions([]string{good, wrong}); err == nil || !strings.Contains(err.Error(), `etcd-3.6.16 reports version "3.5.35" (etcd --version) but its name says 3.6.16`) {
		t.Errorf("mislabeled: %v", err)
	}
	if err := checkBinaryVersions([]string{silent}); err == nil || !strings.Contains(err.Error(), "`etcd-3.7.3 --version` failed: exit status 3") {
		t.Errorf("silent: %v", err)
	}
}

func TestResolveDataDirRelative(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	os.Mkdir("data", 0o700)
	if got, err := resolveDataDir("data"); err != nil || got != "data" {
		t.Fatalf("relative, no link: %q, %v; want it unchanged", got, err)
	}
}
