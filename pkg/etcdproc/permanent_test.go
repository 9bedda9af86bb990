package etcdproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

func TestPermanent(t *testing.T) {
	// A real TLS failure: a server whose CA the client does not know.
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	_, tlsErr := http.Get(srv.URL)
	// A real "connection refused": a port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, refused := http.Get("http://" + addr)
	// The private TLS of a step, asked over plain HTTP.
	plainSrv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer plainSrv.Close()
	pt, err := newPrivateTLS(stepUser)
	if err != nil {
		t.Fatal(err)
	}
	defer pt.remove()
	_, httpsToHTTP := (&http.Client{Transport: &http.Transport{TLSClientConfig: pt.client}}).Get("https://" + plainSrv.Listener.Addr().String())

	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"auth enabled, no user (client error)", rpctypes.ErrUserEmpty, true},
		{"auth enabled, no user (gRPC status)", rpctypes.ErrGRPCUserEmpty, true},
		{"permission denied", fmt.Errorf("lease grant: %w", rpctypes.ErrPermissionDenied), true},
		{"auth failed", rpctypes.ErrAuthFailed, true},
		{"user not found (client error)", fmt.Errorf("cancel: %w", rpctypes.ErrUserNotFound), true},
		{"user not found (gRPC status)", rpctypes.ErrGRPCUserNotFound, true},
		{"no downgrade in flight", rpctypes.ErrGRPCNoInflightDowngrade, false},
		{"invalid auth token", rpctypes.ErrGRPCInvalidAuthToken, true},
		{"TLS: unknown authority", tlsErr, true},
		{"TLS to a plain HTTP server", httpsToHTTP, true},
		{"HTTP 403 on /version", fmt.Errorf("GET /version: 403 Forbidden: %w", errRefused), true},
		{"connection refused", refused, false},
		{"deadline", context.DeadlineExceeded, false},
		{"not capable (starting)", rpctypes.ErrGRPCNotCapable, false},
		{"no leader", rpctypes.ErrNoLeader, false},
		{"timeout", rpctypes.ErrGRPCTimeout, false},
		{"lease exists", rpctypes.ErrLeaseExist, false},
		{"plain error", errors.New("boom"), false},
	} {
		if c.name != "nil" && c.err == nil {
			t.Fatalf("%s: the test made no error", c.name)
		}
		if got := Permanent(c.err); got != c.want {
			t.Errorf("%s: Permanent(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}
