package etcdproc

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// stepUser is the common name of the step's client certificate. etcd (3.2+) takes a
// verified client certificate's CN as the user name when the request carries no
// token, so with --client-cert-auth and a CA that only this run holds, the step acts
// as root on auth-enabled data without a password: lease grants and revokes, status,
// snapshots and the downgrade API (root only) all pass etcd's auth checks. On data
// without auth the name is ignored. Every auth-enabled etcd has a root user with the
// root role: etcd refuses to enable auth without one and to take the role away
// while auth is on.
const stepUser = "root"

// privateTLS is the per-process TLS of the step's private client listener: a CA made
// for this one etcd run (its key never leaves memory), a server certificate for the
// loopback names, and the client certificate the step presents. Nobody else can get a
// certificate the listener accepts, so the private port is closed to other local
// processes too.
type privateTLS struct {
	dir                       string // holds the files etcd reads; removed at stop
	caFile, certFile, keyFile string
	client                    *tls.Config
}

// newPrivateTLS (user: the client certificate's CN) writes the CA certificate and
// the server key pair into a new 0700 temp dir, and returns them with the client
// side's TLS config.
func newPrivateTLS(user string, fallbackDirs ...string) (*privateTLS, error) {
	ca, caKey, err := newCA()
	if err != nil {
		return nil, err
	}
	// The server certificate serves for client auth too: etcd's grpc-gateway dials
	// its own listener with it, and without ClientAuth etcd refuses it (a
	// "rejected connection" warning on every step, and a redial).
	srvKey, srvDER, err := signLeaf(ca, caKey, 2, "etcd-migrate step server", x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, err
	}
	cliKey, cliDER, err := signLeaf(ca, caKey, 3, user, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, err
	}
	t, err := writeTLSFiles(ca.Raw, srvDER, srvKey, fallbackDirs)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	t.client = &tls.Config{
		RootCAs:      pool,
		Certificates: []tls.Certificate{{Certificate: [][]byte{cliDER}, PrivateKey: cliKey}},
		MinVersion:   tls.VersionTLS12,
	}
	return t, nil
}

// newCA makes the run's CA, valid from an hour ago (clock skew) for a week.
func newCA() (*x509.Certificate, *ecdsa.PrivateKey, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "etcd-migrate step CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	return ca, caKey, err
}

// signLeaf makes a loopback certificate for cn signed by the CA.
func signLeaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey, serial int64, cn string, usage ...x509.ExtKeyUsage) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    ca.NotBefore,
		NotAfter:     ca.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usage,
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	return key, der, err
}

// writeTLSFiles writes the CA and the server's certificate and key (0600) into a
// new 0700 temp dir: $TMPDIR first; a read-only root file system (a hardened pod)
// leaves the fallbacks, e.g. the data dir's parent, which holds the lock and backup
// anyway.
func writeTLSFiles(caDER, srvDER []byte, srvKey *ecdsa.PrivateKey, fallbackDirs []string) (*privateTLS, error) {
	dir, err := os.MkdirTemp("", "etcd-migrate-tls-*")
	for _, fb := range fallbackDirs {
		if err == nil {
			break
		}
		dir, err = os.MkdirTemp(fb, ".etcd-migrate-tls-*")
	}
	if err != nil {
		return nil, fmt.Errorf("private TLS files: %w", err)
	}
	t := &privateTLS{dir: dir, caFile: filepath.Join(dir, "ca.crt"), certFile: filepath.Join(dir, "server.crt"), keyFile: filepath.Join(dir, "server.key")}
	srvKeyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.remove()
		return nil, err
	}
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{{t.caFile, "CERTIFICATE", caDER}, {t.certFile, "CERTIFICATE", srvDER}, {t.keyFile, "EC PRIVATE KEY", srvKeyDER}} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			t.remove()
			return nil, fmt.Errorf("private TLS files: %w", err)
		}
	}
	return t, nil
}

// args are the etcd flags that make the client listener use this TLS and take the
// client certificate's CN as the user.
func (t *privateTLS) args() []string {
	return []string{"--cert-file=" + t.certFile, "--key-file=" + t.keyFile,
		"--trusted-ca-file=" + t.caFile, "--client-cert-auth=true"}
}

// clientConfig is the step's client side of t; nil (plain HTTP) without t.
func (t *privateTLS) clientConfig() *tls.Config {
	if t == nil {
		return nil
	}
	return t.client
}

func (t *privateTLS) remove() {
	if t != nil {
		os.RemoveAll(t.dir)
	}
}
