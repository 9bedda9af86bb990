package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/pkg/keyspace"
	"github.com/etcd-migrate/etcd-migrate/pkg/v3backend"
)

const (
	rootPassword  = "root-pw"
	readerPass    = "alice-pw"
	readerPrefix  = "/registry/"
	authReadyWait = 20 * time.Second
)

// enableAuth turns etcd auth on the way an operator does: a root user with the root
// role, a reader user whose role may read readerPrefix only, then auth enable.
func enableAuth(t *testing.T, c *clientv3.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), authReadyWait)
	defer cancel()
	steps := []func() error{
		func() error { _, err := c.UserAdd(ctx, "root", rootPassword); return err },
		func() error { _, err := c.RoleAdd(ctx, "root"); return err },
		func() error { _, err := c.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := c.RoleAdd(ctx, "reader"); return err },
		func() error {
			_, err := c.RoleGrantPermission(ctx, "reader", readerPrefix, clientv3.GetPrefixRangeEnd(readerPrefix), clientv3.PermissionType(clientv3.PermRead))
			return err
		},
		func() error { _, err := c.UserAdd(ctx, "alice", readerPass); return err },
		func() error { _, err := c.UserGrantRole(ctx, "alice", "reader"); return err },
		func() error { _, err := c.AuthEnable(ctx); return err },
	}
	for i, s := range steps {
		if err := s(); err != nil {
			t.Fatalf("auth setup step %d: %v", i, err)
		}
	}
}

// authFixture is the 3.4.13 fixture with auth enabled by etcd 3.4.13, and the
// keyspace it serves.
func authFixture(t *testing.T, binDir string) (dataDir string, want etcdtest.Dump) {
	t.Helper()
	dataDir = etcdtest.CopyDir(t, etcdtest.ExtractFixture(t, fixture34))
	s := etcdtest.Serve(t, binDir, "3.4.13", dataDir)
	want = s.DumpAll(t)
	enableAuth(t, s.Client)
	s.Stop()
	return dataDir, want
}

// offlineAuth reads the auth state of dataDir's backend.
func offlineAuth(t *testing.T, dataDir string) v3backend.Auth {
	t.Helper()
	d, err := keyspace.Of(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	return d.Auth
}

// assertAuthServed serves dataDir with etcd-<version> as root and checks the
// keyspace, that auth is on, and that the reader's permission still works both
// ways: it reads under readerPrefix and is refused a write.
func assertAuthServed(t *testing.T, binDir, version, dataDir string, want etcdtest.Dump, what string) {
	t.Helper()
	s := etcdtest.ServeAs(t, binDir, version, dataDir, "root", rootPassword)
	defer s.Stop()
	got := s.DumpAll(t)
	if diffs := etcdtest.Compare(want, got, 10); len(diffs) > 0 {
		t.Fatalf("%s: the keyspace served by %s differs from the original:\n%s", what, version, strings.Join(diffs, "\n"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), authReadyWait)
	defer cancel()
	// Auth is on: a request without a user is refused (3.4 has no AuthStatus).
	anon, err := clientv3.New(clientv3.Config{Endpoints: []string{s.ClientURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if _, err := anon.Get(ctx, readerPrefix); !errors.Is(err, rpctypes.ErrUserEmpty) {
		t.Fatalf("%s: a read without a user on %s: %v, want %v (auth enabled)", what, version, err, rpctypes.ErrUserEmpty)
	}
	users, err := s.Client.UserList(ctx)
	if err != nil || strings.Join(users.Users, ",") != "alice,root" {
		t.Fatalf("%s: users on %s: %v, %v; want alice,root", what, version, users, err)
	}
	reader, err := clientv3.New(clientv3.Config{Endpoints: []string{s.ClientURL}, Username: "alice", Password: readerPass, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("%s: alice logs in on %s: %v", what, version, err)
	}
	defer reader.Close()
	r, err := reader.Get(ctx, readerPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || r.Count == 0 {
		t.Fatalf("%s: alice reads %s on %s: %v, count %v", what, readerPrefix, version, err, r)
	}
	if _, err := reader.Put(ctx, readerPrefix+"alice-was-here", "x"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Fatalf("%s: alice's write on %s: %v, want permission denied", what, version, err)
	}
}

// TestAuthEnabledWalk: data with etcd auth on (root, a reader role with a
// permission, a user) walks 3.4.13 -> 3.7.3 and back down to 3.4.13 with no
// credentials given to migrate: the steps authenticate with a per-run client
// certificate (CN root) that only their private listener accepts. Users, roles,
// permissions, the auth revision and "auth enabled" come through every step.
func TestAuthEnabledWalk(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	dataDir, want := authFixture(t, binDir)
	authBefore := offlineAuth(t, dataDir)
	if !authBefore.Enabled || strings.Join(authBefore.Users, ",") != "alice,root" || strings.Join(authBefore.Roles, ",") != "reader,root" {
		t.Fatalf("fixture auth state: %s", authBefore)
	}

	st := runMigrate(t, binDir, dataDir, nil, "status")
	wantAuth := fmt.Sprintf("auth:        enabled (revision %d; users alice,root; roles reader,root)\n", authBefore.Revision)
	if st.code != 0 || !strings.Contains(st.stdout, wantAuth) {
		t.Fatalf("status: exit %d, want %q in:\n%s%s", st.code, wantAuth, st.stdout, st.stderr)
	}

	start := time.Now()
	r := runMigrate(t, binDir, dataDir, nil, "--target-version=3.7.3", "--exec=false")
	if r.code != 0 {
		t.Fatalf("upgrade of auth-enabled data: exit %d\n%s", r.code, r.stderr)
	}
	t.Logf("auth-enabled walk 3.4.13 -> 3.7.3 of %d keys: %v", len(want.Keys), time.Since(start))
	if got := readVersionTxt(t, dataDir); got != "3.7.3/etcd3\n" {
		t.Fatalf("version.txt = %q", got)
	}
	if got := offlineAuth(t, dataDir); got.Sum != authBefore.Sum || got.Revision != authBefore.Revision || !got.Enabled {
		t.Fatalf("auth after the walk: %s (records %x), before: %s (records %x)", got, got.Sum, authBefore, authBefore.Sum)
	}
	assertAuthServed(t, binDir, "3.7.3", dataDir, want, "after the walk to 3.7.3")

	// Down again: 3.7 -> 3.6 -> 3.5 through the downgrade API (root only), 3.5 ->
	// 3.4 through a snapshot (root only) and a restore.
	r = runMigrate(t, binDir, dataDir, nil, "--target-version=3.4.13", "--exec=false")
	if r.code != 0 {
		t.Fatalf("rollback of auth-enabled data: exit %d\n%s", r.code, r.stderr)
	}
	if got := readVersionTxt(t, dataDir); got != "3.4.13/etcd3\n" {
		t.Fatalf("version.txt after the rollback = %q", got)
	}
	if got := offlineAuth(t, dataDir); got.Sum != authBefore.Sum || !got.Enabled {
		t.Fatalf("auth after the rollback: %s, before: %s", got, authBefore)
	}
	assertAuthServed(t, binDir, "3.4.13", dataDir, want, "after the rollback to 3.4.13")
}

// TestClientTLSSettings: a member config whose client side is TLS with client
// certificates (LISTEN_CLIENT_URLS https, ETCD_CREDS naming the server key pair, the
// CA and --client-cert-auth) walks like any other: the step's private listener
// uses migrate's own per-run TLS, which nothing in ETCD_CREDS replaces.
func TestClientTLSSettings(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	pristine := etcdtest.ExtractFixture(t, fixture34)
	want := baseline34(t, binDir, pristine)
	dataDir := etcdtest.CopyDir(t, pristine)
	cert, key, _ := peerTLS(t)
	env := []string{
		fmt.Sprintf("LISTEN_CLIENT_URLS=https://127.0.0.1:%d", etcdtest.FreePort(t)),
		"ETCD_CREDS=--cert-file=" + cert + " --key-file=" + key + " --trusted-ca-file=" + cert + " --client-cert-auth=true",
	}
	start := time.Now()
	r := runMigrate(t, binDir, dataDir, env, "--target-version=3.6.16", "--exec=false")
	if r.code != 0 {
		t.Fatalf("walk with client TLS settings: exit %d after %v\n%s", r.code, time.Since(start), r.stderr)
	}
	if got := readVersionTxt(t, dataDir); got != "3.6.16/etcd3\n" {
		t.Fatalf("version.txt = %q", got)
	}
	assertServedKeyspace(t, binDir, "3.6.16", dataDir, want, "after a walk with client TLS settings")
}
