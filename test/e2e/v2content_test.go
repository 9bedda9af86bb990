package e2e

import (
	"bytes"
	"context"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/pkg/v2tov3"
)

const fixtureV2 = "etcd2-3.4.13.tar.gz"

// etcdctlMigrated is what the Kubernetes etcd image's etcd2 -> etcd3 migration left
// behind: the etcd2 fixture converted by the real `etcdctl-3.4.13 migrate`, whose
// v2 keys stay in the v2 store next to the new v3 keyspace. outside: keep the v2
// keys outside /registry (else they are deleted through the v2 API first).
func etcdctlMigrated(t *testing.T, binDir string, outside bool) string {
	t.Helper()
	dataDir := etcdtest.CopyDir(t, etcdtest.ExtractFixture(t, fixtureV2))
	if !outside {
		s := etcdtest.ServeV2(t, binDir, "3.4.13", dataDir)
		req, _ := http.NewRequest(http.MethodDelete, s.ClientURL+"/v2/keys/other?recursive=true", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("v2 delete /other: %v %v", resp, err)
		}
		resp.Body.Close()
		s.Stop()
	}
	cmd := exec.Command(filepath.Join(binDir, "etcdctl-3.4.13"), "migrate", "--data-dir="+dataDir)
	cmd.Env = append(cmd.Environ(), "ETCDCTL_API=3")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("etcdctl migrate: %v\n%s", err, out)
	}
	if err := writeFile(filepath.Join(dataDir, "version.txt"), "3.4.13/etcd3\n"); err != nil {
		t.Fatal(err)
	}
	return dataDir
}

func v2Content(t *testing.T, dataDir string) v2tov3.V2Content {
	t.Helper()
	c, err := v2tov3.ReadV2Content(zap.NewNop(), dataDir, "", "/registry")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCustomV2Content: etcd3 data that still holds the v2 keys `etcdctl migrate`
// copied (etcd 3.6+ refuses to start on it) walks to 3.7.3: the hop into 3.6 first
// deletes the v2 content through etcd 3.5's v2 API and saves a snapshot past it.
// v2 keys outside the Kubernetes prefix, which a v2 client may still use, are
// refused before anything is touched unless DROP_V2_CONTENT=true.
func TestCustomV2Content(t *testing.T) {
	binDir := etcdtest.BinDir(t)

	t.Run("without the drop etcd 3.6 refuses the data", func(t *testing.T) {
		dataDir := etcdctlMigrated(t, binDir, false)
		if r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.5.35", "--exec=false"); r.code != 0 {
			t.Fatalf("walk to 3.5.35: exit %d\n%s", r.code, r.stderr)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		port, peer := etcdtest.FreePort(t), etcdtest.FreePort(t)
		cmd := exec.CommandContext(ctx, filepath.Join(binDir, "etcd-3.6.16"), "--name=etcd-member", "--data-dir="+dataDir,
			"--listen-client-urls=http://127.0.0.1:"+strconv.Itoa(port), "--advertise-client-urls=http://127.0.0.1:"+strconv.Itoa(port),
			"--listen-peer-urls=http://127.0.0.1:"+strconv.Itoa(peer))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err == nil || !strings.Contains(out.String(), "detected disallowed custom content in v2store") {
			t.Fatalf("etcd 3.6.16 on etcdctl-migrated data: %v, want it to refuse the v2 content:\n%s", err, out.String())
		}
	})

	t.Run("keys under the prefix are dropped", func(t *testing.T) {
		dataDir := etcdctlMigrated(t, binDir, false)
		before := v2Content(t, dataDir)
		if before.MetaOnly || before.Keys < 300 || before.OutsidePrefix != 0 {
			t.Fatalf("fixture v2 content: %+v", before)
		}
		s := etcdtest.Serve(t, binDir, "3.4.13", etcdtest.CopyDir(t, dataDir))
		want := s.DumpAll(t)
		s.Stop()
		if len(want.Keys) < 300 {
			t.Fatalf("etcdctl migrate wrote %d v3 keys", len(want.Keys))
		}
		r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.7.3", "--exec=false")
		if r.code != 0 {
			t.Fatalf("walk: exit %d\n%s", r.code, r.stderr)
		}
		if !strings.Contains(r.stderr, "dropped the v2 store's content before etcd 3.6") {
			t.Fatalf("no drop logged:\n%s", r.stderr)
		}
		if got := readVersionTxt(t, dataDir); got != "3.7.3/etcd3\n" {
			t.Fatalf("version.txt = %q", got)
		}
		if c := v2Content(t, dataDir); !c.MetaOnly {
			t.Fatalf("v2 content after the walk: %+v", c)
		}
		assertServedKeyspace(t, binDir, "3.7.3", dataDir, want, "after dropping the v2 content")
	})

	t.Run("keys outside the prefix are refused, then dropped on request", func(t *testing.T) {
		dataDir := etcdctlMigrated(t, binDir, true)
		sum := etcdtest.Checksum(t, dataDir)
		start := time.Now()
		r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.7.3", "--exec=false")
		took := time.Since(start)
		if r.code != 2 {
			t.Fatalf("exit %d, want 2\n%s", r.code, r.stderr)
		}
		want := "migrate: error: 3.5.35/etcd3 -> 3.6.16/etcd3: the v2 store holds 3 v2 keys outside /registry (first: /other/nested/deep/y), which etcd 3.6+ refuses to start with and a v2 client may still use: copy what is needed into the v3 keyspace, then rerun with DROP_V2_CONTENT=true (--drop-v2-content)"
		if l := errorLine(t, r); !strings.HasPrefix(l, want) {
			t.Fatalf("error line:\n%s\nwant prefix:\n%s", l, want)
		}
		if got := etcdtest.Checksum(t, dataDir); got != sum {
			t.Fatal("the refused run changed the data dir")
		}
		t.Logf("refused in %v", took)
		r = runMigrate(t, binDir, dataDir, []string{"DROP_V2_CONTENT=true"}, "--target-version=3.7.3", "--exec=false")
		if r.code != 0 {
			t.Fatalf("walk with DROP_V2_CONTENT=true: exit %d\n%s", r.code, r.stderr)
		}
		if c := v2Content(t, dataDir); !c.MetaOnly {
			t.Fatalf("v2 content after the walk: %+v", c)
		}
	})
}
