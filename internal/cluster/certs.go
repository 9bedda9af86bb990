package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
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

// peerTLS is the peer PKI of a cluster: one CA, and per member a certificate for
// both server and client auth whose IP SAN is the member's own address, as
// kubeadm's etcd peer certificates are (plus 127.0.0.1, see memberCert).
type peerTLS struct {
	caFile string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	dir    string
}

// newPeerTLS writes a fresh CA into dir.
func newPeerTLS(dir string) (*peerTLS, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "etcd-migrate-ha-test-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	p := &peerTLS{caFile: filepath.Join(dir, "ca.crt"), ca: ca, caKey: key, dir: dir}
	return p, writePEM(p.caFile, "CERTIFICATE", der)
}

// memberCert signs a peer certificate for name at ip and writes it; it returns the
// cert and key file paths.
func (p *peerTLS) memberCert(serial int64, name string, ip net.IP) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		// 127.0.0.1 too: etcd checks a peer's client certificate against the address
		// the connection comes from, and on one machine the kernel gives every
		// member's outgoing connection the source 127.0.0.1 whatever address it
		// dials ("embed: rejected connection ... does not match").
		IPAddresses: []net.IP{ip, net.IPv4(127, 0, 0, 1)},
		DNSNames:    []string{name},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		return "", "", err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(p.dir, name+"-peer.crt"), filepath.Join(p.dir, name+"-peer.key")
	if err := writePEM(certFile, "CERTIFICATE", der); err != nil {
		return "", "", err
	}
	return certFile, keyFile, writePEM(keyFile, "EC PRIVATE KEY", kder)
}

func writePEM(path, typ string, der []byte) error {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
