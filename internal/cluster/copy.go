package cluster

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Saved is a copy of every member's data dir.
type Saved struct{ dirs []string }

// Save copies every member's data dir (members stopped) so that Restore can put
// the same data back: several walks over one generated cluster.
func (c *Cluster) Save(t testing.TB) Saved {
	t.Helper()
	root := t.TempDir()
	var s Saved
	for _, m := range c.Members {
		dst := filepath.Join(root, m.Name)
		if out, err := exec.Command("cp", "-a", m.DataDir, dst).CombinedOutput(); err != nil {
			t.Fatalf("save %s: %v: %s", m.DataDir, err, out)
		}
		s.dirs = append(s.dirs, dst)
	}
	return s
}

// Restore replaces every member's data dir by its saved copy (members stopped).
func (c *Cluster) Restore(t testing.TB, s Saved) {
	t.Helper()
	for i, m := range c.Members {
		if err := os.RemoveAll(m.DataDir); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("cp", "-a", s.dirs[i], m.DataDir).CombinedOutput(); err != nil {
			t.Fatalf("restore %s: %v: %s", m.DataDir, err, out)
		}
	}
}
