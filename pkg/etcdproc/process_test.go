package etcdproc

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

func TestArgs(t *testing.T) {
	base := Config{
		Member: Member{Name: "m", ClientURL: "http://127.0.0.1:1",
			ListenPeerURLs: "http://localhost:2", InitialAdvertisePeerURLs: "http://localhost:2",
			InitialCluster: "m=http://localhost:2", ExtraArgs: []string{"--peer-auto-tls"}},
		Version: versionfile.MustVersion("3.7.3"), DataDir: "/d", SnapshotCount: 1,
	}
	args := base.Args()
	for _, want := range []string{"--name=m", "--data-dir=/d", "--listen-client-urls=http://127.0.0.1:1", "--snapshot-count=1", "--heartbeat-interval=10", "--election-timeout=100"} {
		if !slices.Contains(args, want) {
			t.Errorf("3.7 single member: %q missing from %q", want, args)
		}
	}
	if args[len(args)-1] != "--peer-auto-tls" {
		t.Errorf("extra args must come last (so they win): %q", args)
	}
	if slices.Contains(args, "--logger=zap") {
		t.Errorf("3.7 needs no --logger: %q", args)
	}

	if a := strings.Join((Config{Member: base.Member, Version: base.Version, DataDir: "/d"}).Args(), " "); strings.Contains(a, "--snapshot-count") {
		t.Errorf("SnapshotCount 0 must leave etcd's default: %s", a)
	}

	multi := base
	multi.InitialCluster = "m=http://localhost:2,n=http://other:2380"
	if a := strings.Join(multi.Args(), " "); strings.Contains(a, "election-timeout") || strings.Contains(a, "heartbeat") {
		t.Errorf("multi-member cluster timing must be left alone: %s", a)
	}
	// ETCD_CREDS' raft timing, held back while INITIAL_CLUSTER named one member,
	// goes to a member the data shows to be one of several, not to a lone one.
	multi.RaftArgs = []string{"--heartbeat-interval=250", "--election-timeout", "2500"}
	multi.MultiMember = true
	if a := strings.Join(multi.Args(), " "); !strings.Contains(a, "--heartbeat-interval=250 --election-timeout 2500") {
		t.Errorf("a member of several lost the cluster's raft timing: %s", a)
	}
	lone := base
	lone.RaftArgs = multi.RaftArgs
	if a := strings.Join(lone.Args(), " "); strings.Contains(a, "=250") || strings.Contains(a, "2500") {
		t.Errorf("a lone member got the cluster's raft timing: %s", a)
	}

	dc := base
	dc.DowngradeCheckTime = 50 * time.Millisecond
	if a := dc.Args(); !slices.Contains(a, "--downgrade-check-time=50ms") {
		t.Errorf("3.7 downgrade check flag missing: %q", a)
	}
	dc.Version = versionfile.MustVersion("3.5.35")
	if a := dc.Args(); !slices.Contains(a, "--experimental-downgrade-check-time=50ms") {
		t.Errorf("3.5 spells it --experimental-downgrade-check-time: %q", a)
	}

	dc.Version = versionfile.MustVersion("3.4.13")
	if a := strings.Join(dc.Args(), " "); strings.Contains(a, "downgrade-check-time") {
		t.Errorf("3.4 has no downgrade monitor flag: %s", a)
	}

	// Once Start made the private TLS, the client URL is https and the TLS flags
	// come after the extra args, so ETCD_CREDS cannot replace them.
	withTLS := base
	withTLS.ExtraArgs = []string{"--cert-file=/theirs.crt"}
	pt, err := newPrivateTLS(stepUser)
	if err != nil {
		t.Fatal(err)
	}
	defer pt.remove()
	withTLS.tls = pt
	a := withTLS.Args()
	if !slices.Contains(a, "--listen-client-urls=https://127.0.0.1:1") || a[len(a)-1] != "--client-cert-auth=true" ||
		slices.Index(a, "--cert-file="+pt.certFile) < slices.Index(a, "--cert-file=/theirs.crt") {
		t.Errorf("private TLS flags: %q", a)
	}

	q := base
	q.QuotaBackendBytes = 9 << 30
	if a := q.Args(); !slices.Contains(a, "--quota-backend-bytes=9663676416") || a[len(a)-1] != "--peer-auto-tls" {
		t.Errorf("quota flag missing, or after the extra args: %q", a)
	}
	q.Version = versionfile.MustVersion("2.3.8")
	if a := strings.Join(q.Args(), " "); strings.Contains(a, "quota") {
		t.Errorf("etcd 2.x has no backend quota flag: %s", a)
	}

	old := base
	old.Version = versionfile.MustVersion("3.4.13")
	if a := old.Args(); !slices.Contains(a, "--logger=zap") || !slices.Contains(a, "--log-outputs=stderr") {
		t.Errorf("3.4 must log through zap: %q", a)
	}
}

func TestTellingLine(t *testing.T) {
	cases := []struct {
		lines []string
		want  string
	}{
		{nil, "no output"},
		{[]string{"", "flag provided but not defined: -x", "Usage:"}, "last error line: flag provided but not defined: -x"},
		{[]string{`{"level":"info","msg":"a"}`, `{"level":"panic","msg":"execute job failed"}`, `{"level":"info","msg":"b"}`}, `last error line: {"level":"panic","msg":"execute job failed"}`},
		{[]string{"panic: unmarshal should never fail", "goroutine 1"}, "last error line: panic: unmarshal should never fail"},
	}
	for _, c := range cases {
		if got := tellingLine(c.lines); got != c.want {
			t.Errorf("tellingLine(%q) = %q, want %q", c.lines, got, c.want)
		}
	}
	long := strings.Repeat("x", 700) + " error"
	if got := tellingLine([]string{long}); len(got) != len("last error line: ")+603 {
		t.Errorf("long line not shortened: %d chars", len(got))
	}
}
