//go:build oldetcd

package oldetcd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// defaultVersions is the Makefile's OLD_VERSIONS.
var defaultVersions = []string{"2.2.5", "2.3.8", "3.0.17", "3.1.20", "3.2.32", "3.3.27"}

func versions() []string {
	if s := os.Getenv("ETCD_MIGRATE_OLD_VERSIONS"); s != "" {
		return strings.Fields(strings.ReplaceAll(s, ",", " "))
	}
	return defaultVersions
}

func binDir(t *testing.T) string {
	if d := os.Getenv("ETCD_MIGRATE_BIN_DIR"); d != "" {
		return d
	}
	return filepath.Join(etcdtest.RepoRoot(), "_output", "bin")
}

func TestOldEtcdSmoke(t *testing.T) {
	dir := binDir(t)
	for _, v := range versions() {
		t.Run(v, func(t *testing.T) { smoke(t, dir, v) })
	}
}

func smoke(t *testing.T, dir, v string) {
	etcd, ctl := filepath.Join(dir, "etcd-"+v), filepath.Join(dir, "etcdctl-"+v)
	for _, b := range []string{etcd, ctl} {
		if _, err := os.Stat(b); err != nil {
			t.Fatalf("%v: run `make old-etcd-binaries` first", err)
		}
	}
	v3 := !strings.HasPrefix(v, "2.")

	out := run(t, nil, etcd, "--version")
	if !strings.Contains(out, "etcd Version: "+v+"\n") {
		t.Fatalf("etcd-%s --version does not name %s:\n%s", v, v, out)
	}
	out = run(t, []string{"ETCDCTL_API=2"}, ctl, "--version")
	// "etcdctl version 2.2.5" in 2.x, "etcdctl version: 3.0.17" in 3.x.
	if !strings.Contains(out, "etcdctl version "+v+"\n") && !strings.Contains(out, "etcdctl version: "+v+"\n") {
		t.Fatalf("etcdctl-%s --version does not name %s:\n%s", v, v, out)
	}

	srv := start(t, etcd, v)

	// v2 through etcdctl: written by it, read by it and by the HTTP API. etcdctl
	// 2.2 names the flag --endpoint; later ones --endpoints.
	epFlag := "--endpoints"
	if strings.HasPrefix(v, "2.2.") {
		epFlag = "--endpoint"
	}
	ctl2 := func(args ...string) string {
		return run(t, []string{"ETCDCTL_API=2"}, ctl, append([]string{epFlag, srv.url}, args...)...)
	}
	want := "value-" + v
	ctl2("set", "/smoke/by-etcdctl", want)
	if got := ctl2("get", "/smoke/by-etcdctl"); got != want+"\n" {
		t.Fatalf("v2 etcdctl get /smoke/by-etcdctl = %q, want %q", got, want+"\n")
	}
	if got := v2Get(t, srv.url, "/smoke/by-etcdctl"); got != want {
		t.Fatalf("v2 GET /v2/keys/smoke/by-etcdctl = %q, want %q", got, want)
	}
	v2Put(t, srv.url, "/smoke/by-http", "http-"+v)
	if got := ctl2("get", "/smoke/by-http"); got != "http-"+v+"\n" {
		t.Fatalf("v2 etcdctl get /smoke/by-http = %q, want %q", got, "http-"+v+"\n")
	}

	if v3 {
		ctl3 := func(args ...string) string {
			return run(t, []string{"ETCDCTL_API=3"}, ctl, append([]string{"--endpoints", srv.url}, args...)...)
		}
		if got := ctl3("put", "/smoke/v3", "v3-"+v); got != "OK\n" {
			t.Fatalf("v3 put = %q, want OK", got)
		}
		if got := ctl3("get", "/smoke/v3"); got != "/smoke/v3\nv3-"+v+"\n" {
			t.Fatalf("v3 get /smoke/v3 = %q", got)
		}
		// The v2 and v3 keyspaces are separate stores in every 3.x: the key etcdctl
		// wrote through v2 is not in v3.
		if got := ctl3("get", "/smoke/by-etcdctl"); got != "" {
			t.Fatalf("v3 get of a v2 key = %q, want nothing", got)
		}
		if got := v2Get(t, srv.url, "/smoke/v3"); got != "" {
			t.Fatalf("v2 GET of a v3 key = %q, want not found", got)
		}
	}

	// GET /version: etcdserver names the version; etcdcluster, where the server
	// reports one, is the cluster version once the leader has decided it.
	body, fields := versionJSON(t, srv.url)
	for deadline := time.Now().Add(10 * time.Second); fields["etcdcluster"] == "not_decided" && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		body, fields = versionJSON(t, srv.url)
	}
	t.Logf("etcd %s GET /version: %s", v, body)
	if fields["etcdserver"] != v {
		t.Fatalf("GET /version etcdserver = %q, want %q", fields["etcdserver"], v)
	}
	if c, ok := fields["etcdcluster"]; ok {
		mm := strings.Join(strings.SplitN(v, ".", 3)[:2], ".") + ".0"
		if c != mm {
			t.Fatalf("GET /version etcdcluster = %q, want %q", c, mm)
		}
		t.Logf("etcd %s reports etcdcluster %s", v, c)
	} else {
		t.Logf("etcd %s reports no etcdcluster", v)
	}

	srv.stop(t)
}

type server struct {
	cmd  *exec.Cmd
	url  string
	log  *etcdtest.SyncBuffer
	done chan struct{}
}

// start runs etcd-<v> as a one-member cluster on free loopback ports and a new
// data dir, and waits until GET /health says it is healthy.
func start(t *testing.T, etcd, v string) *server {
	port, peer := etcdtest.FreePort(t), etcdtest.FreePort(t)
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peer)
	cmd := exec.Command(etcd,
		"--name=smoke", "--data-dir="+filepath.Join(t.TempDir(), "data"),
		"--listen-client-urls="+clientURL, "--advertise-client-urls="+clientURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=smoke="+peerURL,
		"--heartbeat-interval=10", "--election-timeout=100")
	if strings.HasPrefix(v, "3.4.") {
		// So that a 3.4 (a candidate pseudo-version, say) can be checked the same
		// way: its v2 API is off by default.
		cmd.Args = append(cmd.Args, "--enable-v2=true")
	}
	s := &server{cmd: cmd, url: clientURL, log: &etcdtest.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			t.Logf("etcd %s log:\n%s", v, s.log)
		}
	})
	hc := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := hc.Get(clientURL + "/health")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && bytes.Contains(b, []byte(`"true"`)) {
				return s
			}
			err = fmt.Errorf("%s: %s", resp.Status, b)
		}
		select {
		case <-s.done:
			t.Fatalf("etcd %s exited before it was healthy: %v", v, cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd %s not healthy after 20s: %v", v, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop interrupts etcd and waits for it to exit (killing it after 10s).
func (s *server) stop(t *testing.T) {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		t.Errorf("etcd did not exit within 10s of SIGINT; killed")
	}
}

// run runs a binary with extra environment and returns its stdout; a failure
// fails the test with its stderr.
func run(t *testing.T, env []string, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", filepath.Base(bin), strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// v2Get returns the value of a v2 key through the HTTP API ("" if not found).
func v2Get(t *testing.T, base, key string) string {
	t.Helper()
	resp, err := http.Get(base + "/v2/keys" + key)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return ""
	}
	var body struct {
		Node struct {
			Value string `json:"value"`
		} `json:"node"`
	}
	if err := decode(resp, &body); err != nil {
		t.Fatalf("GET /v2/keys%s: %v", key, err)
	}
	return body.Node.Value
}

// v2Put sets a v2 key through the HTTP API.
func v2Put(t *testing.T, base, key, value string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, base+"/v2/keys"+key, strings.NewReader(url.Values{"value": {value}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("PUT /v2/keys%s: %s: %s", key, resp.Status, b)
	}
}

// versionJSON returns GET /version's body and its string fields.
func versionJSON(t *testing.T, base string) (string, map[string]string) {
	t.Helper()
	resp, err := http.Get(base + "/version")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &fields) != nil {
		t.Fatalf("GET /version: %s: %s", resp.Status, b)
	}
	return strings.TrimSpace(string(b)), fields
}

func decode(resp *http.Response, v any) error {
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	return json.Unmarshal(b, v)
}
