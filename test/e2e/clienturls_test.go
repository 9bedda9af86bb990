package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// TestClientURLList: LISTEN_CLIENT_URLS holding a list (as Kubernetes manifests
// give the served etcd's) is no error: the steps' private listener takes its first
// loopback URL, and one log line names the rest as not used. A list without a
// loopback URL is refused before anything is touched.
func TestClientURLList(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	dataDir := etcdtest.ExtractFixture(t, fixture34)
	first := fmt.Sprintf("http://127.0.0.1:%d", etcdtest.FreePort(t))
	second := fmt.Sprintf("http://127.0.0.2:%d", etcdtest.FreePort(t))
	r := runMigrate(t, binDir, dataDir, []string{"LISTEN_CLIENT_URLS=" + first + "," + second}, "--target-version=3.5.35", "--exec=false")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	want := `msg="LISTEN_CLIENT_URLS lists several URLs: the steps' private listener uses the first loopback one" used=` + first + ` not_used=[` + second + `]`
	if !strings.Contains(r.stderr, want) {
		t.Fatalf("no log line %q:\n%s", want, r.stderr)
	}
	if got := readVersionTxt(t, dataDir); got != "3.5.35/etcd3\n" {
		t.Fatalf("version.txt = %q", got)
	}

	sum := etcdtest.Checksum(t, dataDir)
	r = runMigrate(t, binDir, dataDir, []string{"LISTEN_CLIENT_URLS=http://10.128.0.1:2379,unix://127.0.0.1:1"}, "--target-version=3.6.16", "--exec=false")
	wantErr := `migrate: error: LISTEN_CLIENT_URLS "http://10.128.0.1:2379,unix://127.0.0.1:1": no loopback http or https URL with a port for the steps' private listener: add one, e.g. http://127.0.0.1:18629`
	if r.code != 2 || errorLine(t, r) != wantErr {
		t.Fatalf("exit %d, error line %q; want 2 and %q", r.code, errorLine(t, r), wantErr)
	}
	if etcdtest.Checksum(t, dataDir) != sum {
		t.Fatal("the refused run changed the data dir")
	}
}

// TestUpgradeDocumentVariables: the variables Kubernetes' etcd upgrade document
// sets are accepted: ETCD_IMAGE is logged and not used; STORAGE_MEDIA_TYPE other
// than application/json with an etcd2 target is refused before anything is
// touched (etcd2 holds JSON values only).
func TestUpgradeDocumentVariables(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	dataDir := etcdtest.ExtractFixture(t, fixture34)
	sum := etcdtest.Checksum(t, dataDir)
	r := runMigrate(t, binDir, dataDir, []string{"STORAGE_MEDIA_TYPE=application/vnd.kubernetes.protobuf", "ETCD_IMAGE=3.0.17"},
		"--target-version=3.4.13", "--target-storage=etcd2", "--exec=false")
	want := "migrate: error: STORAGE_MEDIA_TYPE=application/vnd.kubernetes.protobuf with TARGET_STORAGE=etcd2: an etcd2 target holds JSON values only; " +
		"switch the API server to --storage-media-type=application/json and rewrite every object, then set STORAGE_MEDIA_TYPE=application/json"
	if r.code != 2 || errorLine(t, r) != want {
		t.Fatalf("exit %d, error line %q; want 2 and %q", r.code, errorLine(t, r), want)
	}
	if etcdtest.Checksum(t, dataDir) != sum {
		t.Fatal("the refused run changed the data dir")
	}
	r = runMigrate(t, binDir, dataDir, []string{"STORAGE_MEDIA_TYPE=application/json", "ETCD_IMAGE=3.0.17"}, "--target-version=3.5.35", "--exec=false")
	if r.code != 0 || !strings.Contains(r.stderr, `msg="ETCD_IMAGE is not used: the image is the manifest's, and TARGET_VERSION picks the etcd it runs" etcd_image=3.0.17`) {
		t.Fatalf("exit %d, want 0 and the ETCD_IMAGE log line:\n%s", r.code, r.stderr)
	}
}
