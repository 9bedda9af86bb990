package etcdproc

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// TestInsecurePlainHTTP runs the real etcd 3.4.13 as the test harnesses do: the
// client URL stays http, any client reaches it without a certificate, and
// Process's own client, readiness and stop work without the private TLS.
func TestInsecurePlainHTTP(t *testing.T) {
	peer := freeURL(t)
	cfg := Config{
		Member: Member{Name: "m", ClientURL: freeURL(t), ListenPeerURLs: peer,
			InitialAdvertisePeerURLs: peer, InitialCluster: "m=" + peer},
		Binary: realEtcd(t, "3.4.13"), Version: versionfile.MustVersion("3.4.13"),
		DataDir: filepath.Join(t.TempDir(), "data"), StopTimeout: 10 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), InsecurePlainHTTP: true,
	}
	p, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	if p.URL() != cfg.ClientURL {
		t.Errorf("URL %s, want the client URL as given, %s", p.URL(), cfg.ClientURL)
	}
	if a := strings.Join(p.cfg.Args(), " "); strings.Contains(a, "--cert-file") || strings.Contains(a, "--client-cert-auth") || strings.Contains(a, "--snapshot-count") {
		t.Errorf("plain HTTP without a snapshot count: %s", a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := p.WaitMinor(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := GetVersions(ctx, cfg.ClientURL); err != nil {
		t.Fatalf("a plain HTTP client without a certificate: %v", err)
	}
	c, err := p.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := p.WaitWrite(ctx, c); err != nil {
		t.Fatal(err)
	}
	if killed, err := p.Stop(); killed || err != nil {
		t.Fatalf("stop: killed %v, %v", killed, err)
	}
}
