package etcdproc

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errRefused marks an HTTP answer that refuses the step (401, 403).
var errRefused = errors.New("refused")

// Permanent reports whether err from the step's etcd or its API will not go away by
// retrying: a refused request (auth, permission, invalid argument, an API the
// server lacks) or a TLS failure. A step fails on it at once, with the cause,
// instead of retrying until --step-timeout, which is for slowness only. Connection
// refused, timeouts and "not ready yet" answers are not permanent: etcd is starting.
func Permanent(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, errRefused) {
		return true
	}
	var coded interface{ Code() codes.Code }
	code := codes.OK
	if errors.As(err, &coded) {
		code = coded.Code()
	} else if s, ok := status.FromError(err); ok {
		code = s.Code()
	}
	switch code {
	case codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated, codes.Unimplemented:
		return true
	case codes.FailedPrecondition:
		// etcd also says "precondition" for states a retry can outlive (a lease
		// that exists, no downgrade in flight): only its auth refusals count.
		desc := rpctypes.ErrorDesc(err)
		for _, e := range []error{rpctypes.ErrGRPCUserNotFound, rpctypes.ErrGRPCRoleNotFound, rpctypes.ErrGRPCInvalidAuthMgmt, rpctypes.ErrGRPCAuthNotEnabled} {
			if strings.HasSuffix(desc, rpctypes.ErrorDesc(e)) {
				return true
			}
		}
	}
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalid          x509.CertificateInvalidError
		recordHeader     tls.RecordHeaderError
		alert            tls.AlertError
		verify           *tls.CertificateVerificationError
	)
	if errors.As(err, &unknownAuthority) || errors.As(err, &hostname) || errors.As(err, &invalid) ||
		errors.As(err, &recordHeader) || errors.As(err, &alert) || errors.As(err, &verify) {
		return true
	}
	// gRPC flattens transport errors into text.
	msg := err.Error()
	for _, s := range []string{"x509: ", "tls: ", "authentication handshake failed", "http: server gave HTTP response to HTTPS client"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
