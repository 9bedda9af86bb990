package memberdir

import (
	"os"
	"path/filepath"

	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// Unrecorded is the original member dir that Recover would put back (a member dir
// replacement interrupted before version.txt recorded its step), if there is one.
// It only reads: `plan` and `status` judge the data a run will see after settling.
func Unrecorded(dataDir string) (string, bool) {
	recorded, _ := versionfile.Read(dataDir)
	for _, w := range workDirs(dataDir) {
		b, _ := os.ReadFile(filepath.Join(w, targetFile))
		target, perr := versionfile.ParsePair(string(b))
		if perr == nil && recorded.Version != nil && recorded.Equal(target) {
			continue
		}
		old := filepath.Join(w, oldMember)
		if fi, err := os.Stat(old); err == nil && fi.IsDir() {
			return old, true
		}
	}
	return "", false
}
