package memberdir

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// TestUnrecorded: the original member dir is named only while a swap is in place
// that version.txt does not record, and naming it changes nothing.
func TestUnrecorded(t *testing.T) {
	d := dataDir(t, "3.5.35/etcd3", "orig")
	if p, ok := Unrecorded(d); ok {
		t.Fatalf("nothing begun: Unrecorded = %s", p)
	}
	w := begin(t, d)
	if p, ok := Unrecorded(d); ok {
		t.Fatalf("begun, not swapped: Unrecorded = %s", p)
	}
	if err := w.Replace(w.Path("out/member")); err != nil {
		t.Fatal(err)
	}
	p, ok := Unrecorded(d)
	if !ok {
		t.Fatal("swapped, not recorded: no original named")
	}
	if b, err := os.ReadFile(filepath.Join(p, "id")); err != nil || string(b) != "orig" {
		t.Fatalf("Unrecorded = %s holding %q, %v; want the original member dir", p, b, err)
	}
	if memberID(t, d) != "new" {
		t.Fatal("Unrecorded changed the member dir")
	}
	if err := versionfile.Write(d, versionfile.MustPair("3.4.13/etcd3")); err != nil {
		t.Fatal(err)
	}
	if p, ok := Unrecorded(d); ok {
		t.Fatalf("recorded: Unrecorded = %s", p)
	}
}
