package steprun

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/etcd-migrate/etcd-migrate/pkg/datadir"
)

func TestStepQuota(t *testing.T) {
	dir := t.TempDir()
	if got := StepQuota(dir); got != 8<<30 {
		t.Errorf("no db: quota %d, want 8 GiB", got)
	}
	db := datadir.BackendPath(dir)
	if err := os.MkdirAll(filepath.Dir(db), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ size, want int64 }{
		{100 << 20, 8 << 30},               // small: etcd's recommended maximum
		{7<<30 + 512<<20, 8<<30 + 512<<20}, // 7.5 GiB: 1 GiB above the db
		{12 << 30, 13 << 30},
	} {
		if err := os.Truncate(db, 0); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		f, err := os.Create(db)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(c.size); err != nil { // sparse
			t.Fatal(err)
		}
		f.Close()
		if got := StepQuota(dir); got != c.want {
			t.Errorf("db of %d bytes: quota %d, want %d", c.size, got, c.want)
		}
	}
}
