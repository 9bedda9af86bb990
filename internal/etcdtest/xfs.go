package etcdtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// MountXFS mounts a new XFS of size bytes (a sparse image file) with reflinks on a
// loop device for the test's time, or skips the test saying why it cannot.
func MountXFS(t testing.TB, size int64) string {
	if os.Geteuid() != 0 {
		t.Skip("not root: a loop mount needs root")
	}
	if _, err := exec.LookPath("mkfs.xfs"); err != nil {
		t.Skip("no mkfs.xfs (xfsprogs) on PATH")
	}
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "xfs.img"), filepath.Join(dir, "mnt")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.xfs", "-q", "-m", "reflink=1", img).CombinedOutput(); err != nil {
		t.Skipf("mkfs.xfs -q -m reflink=1 %s: %v: %s", img, err, out)
	}
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	mounted := false
	t.Cleanup(func() { unmount(t, img, mnt, mounted) })
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("mount -o loop %s %s: %v: %s", img, mnt, err, out)
	}
	mounted = true
	return mnt
}

// unmount undoes mountXFS: the mount, and the loop device if mount left it.
func unmount(t testing.TB, img, mnt string, mounted bool) {
	if mounted {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
			exec.Command("umount", "-l", mnt).Run() // the loop device goes once it is unused
		}
	}
	out, _ := exec.Command("losetup", "-j", img).Output()
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if dev, _, ok := strings.Cut(line, ":"); ok {
			if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
				t.Errorf("losetup -d %s: %v: %s", dev, err, out)
			}
		}
	}
}
