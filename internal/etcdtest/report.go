package etcdtest

import (
	"os"
	"path/filepath"
	"testing"
)

// ReportDirEnv names the directory where suites leave their one-line summaries;
// `make test` prints them last (e.g. "hostile inputs passed: 18/18").
const ReportDirEnv = "ETCD_MIGRATE_REPORT_DIR"

// Report records a suite's summary line as <dir>/<name>.txt, replacing an older one.
// Without ETCD_MIGRATE_REPORT_DIR it only logs the line.
func Report(t testing.TB, name, line string) {
	t.Helper()
	t.Log(line)
	dir := os.Getenv(ReportDirEnv)
	if dir == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("report %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name+".txt"), []byte(line+"\n"), 0o644); err != nil {
		t.Errorf("report %s: %v", name, err)
	}
}
