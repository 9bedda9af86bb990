package image

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/internal/fixture"
)

// fullBundle is `make image`'s default bundle (VARIANT=full): every release from
// 2.2.5. ETCD_MIGRATE_FULL_VERSIONS (the Makefile passes its list) overrides it.
const fullBundle = "2.2.5,2.3.8,3.0.17,3.1.20,3.2.32,3.3.27,3.4.13,3.4.25,3.5.35,3.6.16,3.7.3"

// TestImageFull builds the full variant FROM scratch (TestImage builds the slim
// one) and runs it on data written by the real etcd 2.2.5 without version.txt,
// the seed's case: the image's migrate takes it as 2.2.5/etcd2, converts it at
// 3.0.17, walks every minor to 3.7.3 and execs etcd 3.7.3, which serves every v2
// key with its value and indexes as revisions. Every bundled binary runs in it.
// Document runs the Kubernetes upgrade document's upgrade (to 3.0.17/etcd3) and
// rollback (TARGET_VERSION=2.2.1, etcd2) env blocks in it (document_test.go).
func TestImageFull(t *testing.T) {
	toolName, err := pickTool(t)
	if err != nil {
		t.Skipf("SKIPPED: the image test needs buildah or a docker engine: %v", err)
	}
	bundle := fullBundle
	if s := os.Getenv("ETCD_MIGRATE_FULL_VERSIONS"); s != "" {
		bundle = strings.Join(strings.Fields(strings.ReplaceAll(s, ",", " ")), ",")
	}
	binDir := etcdtest.BinDir(t)
	for _, v := range strings.Split(bundle, ",") {
		if _, err := os.Stat(filepath.Join(binDir, "etcd-"+v)); err != nil {
			t.Fatalf("etcd %s is not built in %s: make etcd-binaries (VARIANT=full) builds every release of the full image", v, binDir)
		}
	}
	tmp := t.TempDir()
	tl := &tool{name: toolName, image: fmt.Sprintf("localhost/etcd-migrate-test-full:%d", os.Getpid()),
		root: filepath.Join(tmp, "storage"), runroot: filepath.Join(tmp, "run")}
	t.Cleanup(func() { tl.cleanup(t) })
	ctxDir := filepath.Join(tmp, "context")
	took := tl.build(t, binDir, ctxDir, bundle)
	t.Logf("full image %s built FROM scratch with %s in %v: %s (binaries %s; %s)", tl.image, toolName,
		took.Round(time.Millisecond), tl.size(t), mib(dirBytes(t, filepath.Join(ctxDir, "bin"))), runtime.GOARCH)

	c := tl.config(t)
	env := map[string]string{}
	for _, kv := range c.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	if env["BUNDLED_VERSIONS"] != bundle || c.Labels["io.etcd-migrate.bundled-versions"] != bundle || env["TARGET_VERSION"] != newest {
		t.Errorf("full image: BUNDLED_VERSIONS=%q label %q TARGET_VERSION=%q; want %q and %s", env["BUNDLED_VERSIONS"],
			c.Labels["io.etcd-migrate.bundled-versions"], env["TARGET_VERSION"], bundle, newest)
	}
	t.Run("Binaries", func(t *testing.T) { testBinaries(t, tl, bundle) })
	t.Run("Etcd225To37", func(t *testing.T) { testOldWalk(t, tl, binDir) })
	t.Run("Document", func(t *testing.T) { testDocument(t, tl, binDir) })
}

func testOldWalk(t *testing.T, tl *tool, binDir string) {
	varEtcd := filepath.Join(t.TempDir(), "var-etcd")
	dataDir := filepath.Join(varEtcd, "data")
	var v2 map[string]etcdtest.V2Node
	err := fixture.GenerateEtcd2Old(binDir, "2.2.5", fixture.Etcd2Options{Keys: 200, SnapshotCount: 50, Writers: 4}, dataDir, fixture.PortPair(t),
		func(url string) error { v2 = etcdtest.DumpV2(t, url); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dataDir, "version.txt")); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chmod", "-R", "a+rwX", varEtcd).CombinedOutput(); err != nil {
		t.Fatalf("chmod: %v: %s", err, out)
	}
	s := serve(t, tl, "etcd225-to-37", newest, map[string]string{varEtcd: "/var/etcd"}, "", nil)
	s.checkExec(t, newest, 0)
	keys := compareV2(t, v2, s.dump(t), s.c.started)
	if v := readFile(t, filepath.Join(dataDir, "version.txt")); v != newest+"/etcd3\n" {
		t.Errorf("version.txt after the walk = %q", v)
	}
	log := s.c.log.String()
	for _, l := range []string{"taken as written by the oldest bundled etcd 2.x",
		"kind=v2-to-v3 from=2.2.5/etcd2 version_txt=3.0.17/etcd3",
		"kind=upgrade-minor from=3.3.27/etcd3 version_txt=3.4.25/etcd3",
		`msg="migration done" version_txt=3.7.3/etcd3 steps=8`} {
		if !strings.Contains(log, l) {
			t.Errorf("walk log lacks %q:\n%s", l, log)
		}
	}
	s.c.stop(t)
	if keys < 200 {
		t.Errorf("only %d keys served", keys)
	}
	t.Logf("2.2.5/etcd2 (no version.txt) -> 3.7.3 in the full image: etcd %s served %d keys (every live v2 key, same values and revisions); %s run to /version %v, to a read %v",
		newest, keys, tl.name, s.versionAfter.Round(time.Millisecond), s.readyAfter.Round(time.Millisecond))
}
