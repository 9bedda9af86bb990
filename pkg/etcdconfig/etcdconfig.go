// Package etcdconfig is the one model of etcd's own settings that migrate reads: the
// served etcd's command line (the arguments after "--"), the ETCD_* environment
// variables etcd reads as flags, and ETCD_CREDS (the extra flags of every step's
// etcd). Each is split the way etcd's flag parser (Go's flag package) reads a command
// line, the flags that matter to migrate are parsed into typed fields with pflag under
// etcd's own names, and every other flag is kept, unchanged, in Args: whether the
// target etcd knows it is checked against the real binary, not here.
package etcdconfig

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

// EnvPrefix is the prefix etcd gives a flag's environment variable
// (--data-dir -> ETCD_DATA_DIR).
const EnvPrefix = "ETCD"

// FlagToEnv is the variable etcd reads for a flag (etcd's flags.FlagToEnv).
func FlagToEnv(name string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Arg is one flag of an etcd command line.
type Arg struct {
	// Name is the flag's name without dashes.
	Name string
	// Value is the flag's value: after "=", or the next token for a flag that takes
	// one; "" for a bare boolean flag.
	Value string
	// HasValue: the value was given (--x=v or --x v), not implied (bare --x).
	HasValue bool
	// Tokens are the command line tokens of this flag, as given.
	Tokens []string
}

// String is the flag as one token, --name=value (bare boolean flags stay bare).
func (a Arg) String() string {
	if !a.HasValue {
		return "--" + a.Name
	}
	return "--" + a.Name + "=" + a.Value
}

// TLS is one listener's TLS files and switches (client or peer).
type TLS struct {
	CertFile, KeyFile, TrustedCAFile, CRLFile string
	// ClientCertFile/ClientKeyFile: the certificate this member presents when it
	// dials (etcd falls back to CertFile/KeyFile).
	ClientCertFile, ClientKeyFile string
	ClientCertAuth, AutoTLS       bool
}

// Empty tells whether no TLS setting is given.
func (t TLS) Empty() bool { return t == TLS{} }

// Member is one etcd member's settings as etcd would read them.
type Member struct {
	Name, DataDir, WALDir                    string
	ListenPeerURLs, InitialAdvertisePeerURLs string
	ListenClientURLs, AdvertiseClientURLs    string
	ListenClientHTTPURLs, ListenMetricsURLs  string
	InitialCluster, InitialClusterState      string
	InitialClusterToken                      string
	// ConfigFile (--config-file): etcd then ignores every other flag and variable.
	ConfigFile string
	Peer       TLS
	Client     TLS
	// SnapshotCount, HeartbeatInterval, ElectionTimeout: 0 when not given.
	SnapshotCount                      uint64
	HeartbeatInterval, ElectionTimeout uint
	ForceNewCluster, EnableV2          bool
	Logger, LogOutputs, LogLevel       string

	// Args are the flags of the command line, in order, known to this package or
	// not (not the ones taken from the environment).
	Args []Arg
	// source: flag name -> where its value came from.
	source map[string]string
	fs     *pflag.FlagSet
}

// IsSet tells whether the flag was given (on the command line or in the
// environment).
func (m *Member) IsSet(name string) bool { _, ok := m.source[name]; return ok }

// Source says where a flag's value came from: `--name after --`, `ETCD_NAME`,
// `ETCD_CREDS`; "" when it was not given.
func (m *Member) Source(name string) string { return m.source[name] }

// kind of a flag this package knows.
type kind int

const (
	kString kind = iota
	kBool
	kUint64
	kUint
	// kBoolSyntax: a boolean flag of etcd this package reads for its syntax only
	// (a bare --x takes no value), not from the environment.
	kBoolSyntax
)

// flagSet defines the flags that matter, with etcd's names and types, bound to m.
// Their types are what etcd (3.4 to 3.7) declares; a value etcd would not accept is
// an error here too.
func flagSet(m *Member) (*pflag.FlagSet, map[string]kind) {
	fs := pflag.NewFlagSet("etcd", pflag.ContinueOnError)
	kinds := map[string]kind{}
	str := func(p *string, name string) { fs.StringVar(p, name, "", ""); kinds[name] = kString }
	boolean := func(p *bool, name string) { fs.BoolVar(p, name, false, ""); kinds[name] = kBool }
	str(&m.Name, "name")
	str(&m.DataDir, "data-dir")
	str(&m.WALDir, "wal-dir")
	str(&m.ListenPeerURLs, "listen-peer-urls")
	str(&m.InitialAdvertisePeerURLs, "initial-advertise-peer-urls")
	str(&m.ListenClientURLs, "listen-client-urls")
	str(&m.AdvertiseClientURLs, "advertise-client-urls")
	str(&m.ListenClientHTTPURLs, "listen-client-http-urls")
	str(&m.ListenMetricsURLs, "listen-metrics-urls")
	str(&m.InitialCluster, "initial-cluster")
	str(&m.InitialClusterState, "initial-cluster-state")
	str(&m.InitialClusterToken, "initial-cluster-token")
	str(&m.ConfigFile, "config-file")
	for _, t := range []struct {
		prefix string
		tls    *TLS
	}{{"", &m.Client}, {"peer-", &m.Peer}} {
		str(&t.tls.CertFile, t.prefix+"cert-file")
		str(&t.tls.KeyFile, t.prefix+"key-file")
		str(&t.tls.TrustedCAFile, t.prefix+"trusted-ca-file")
		str(&t.tls.ClientCertFile, t.prefix+"client-cert-file")
		str(&t.tls.ClientKeyFile, t.prefix+"client-key-file")
		boolean(&t.tls.ClientCertAuth, t.prefix+"client-cert-auth")
		boolean(&t.tls.AutoTLS, t.prefix+"auto-tls")
	}
	str(&m.Client.CRLFile, "client-crl-file")
	str(&m.Peer.CRLFile, "peer-crl-file")
	fs.Uint64Var(&m.SnapshotCount, "snapshot-count", 0, "")
	kinds["snapshot-count"] = kUint64
	fs.UintVar(&m.HeartbeatInterval, "heartbeat-interval", 0, "")
	kinds["heartbeat-interval"] = kUint
	fs.UintVar(&m.ElectionTimeout, "election-timeout", 0, "")
	kinds["election-timeout"] = kUint
	boolean(&m.ForceNewCluster, "force-new-cluster")
	boolean(&m.EnableV2, "enable-v2")
	str(&m.Logger, "logger")
	str(&m.LogOutputs, "log-outputs")
	str(&m.LogLevel, "log-level")
	// Boolean flags of etcd this package does not type, but whose syntax it must
	// know: a bare boolean flag takes no value token.
	for _, b := range []string{"debug", "enable-log-rotation", "enable-pprof", "strict-reconfig-check",
		"pre-vote", "initial-election-tick-advance", "unsafe-no-fsync", "version", "enable-grpc-gateway",
		"socket-reuse-port", "socket-reuse-address", "peer-skip-client-san-verification",
		"experimental-peer-skip-client-san-verification", "experimental-initial-corrupt-check",
		"experimental-enable-lease-checkpoint", "experimental-enable-lease-checkpoint-persist",
		"experimental-memory-mlock", "memory-mlock", "experimental-enable-distributed-tracing",
		"enable-distributed-tracing", "experimental-compact-hash-check-enabled",
		"experimental-txn-mode-write-with-shared-buffer", "experimental-stop-grpc-service-on-defrag",
		"experimental-enable-v2v3", "discovery-insecure-transport", "discovery-insecure-skip-tls-verify"} {
		var ignored bool
		fs.BoolVar(&ignored, b, false, "")
		kinds[b] = kBoolSyntax
	}
	return fs, kinds
}

// Split splits an etcd command line into its flags the way etcd's flag parser reads
// it: -x and --x alike; --x=v; --x v for a flag that takes a value; a boolean flag
// takes a value only after "=". A flag this package does not know takes the next
// token as its value unless that token is itself a flag. Positional arguments and
// "--" are errors: etcd stops reading flags there and refuses to start.
func Split(args []string) ([]Arg, error) {
	_, kinds := flagSet(&Member{})
	var out []Arg
	for i := 0; i < len(args); i++ {
		tok := args[i]
		if tok == "--" || tok == "-" || !strings.HasPrefix(tok, "-") {
			return nil, fmt.Errorf("%q is not a flag (etcd reads flags only and refuses to start on any other argument): remove it, or give it as --flag=value", tok)
		}
		body := strings.TrimPrefix(strings.TrimPrefix(tok, "-"), "-")
		if body == "" || body[0] == '-' || body[0] == '=' {
			return nil, fmt.Errorf("%q: bad flag syntax: write flags as --name=value", tok)
		}
		name, val, hasVal := strings.Cut(body, "=")
		a := Arg{Name: name, Value: val, HasValue: hasVal, Tokens: []string{tok}}
		if !hasVal {
			k, known := kinds[name]
			switch {
			case known && (k == kBool || k == kBoolSyntax):
			case i+1 < len(args) && (known || !strings.HasPrefix(args[i+1], "-")):
				a.Value, a.HasValue = args[i+1], true
				a.Tokens = append(a.Tokens, args[i+1])
				i++
			case known:
				return nil, fmt.Errorf("flag needs an argument: %s: give it a value (--name=value)", tok)
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// Parse reads an etcd command line and, for every flag of this package the command
// line does not give, the ETCD_<FLAG> variable etcd would read instead (getenv nil:
// none). what names the command line in errors and sources ("after --").
func Parse(args []string, getenv func(string) string, what string) (*Member, error) {
	split, err := Split(args)
	if err != nil {
		return nil, fmt.Errorf("etcd args %s: %w", what, err)
	}
	return fromArgs(split, getenv, what)
}

func fromArgs(split []Arg, getenv func(string) string, what string) (*Member, error) {
	m := &Member{Args: split, source: map[string]string{}}
	fs, kinds := flagSet(m)
	m.fs = fs
	for _, a := range split {
		if _, known := kinds[a.Name]; !known {
			continue
		}
		v := a.Value
		if !a.HasValue {
			v = "true" // a bare boolean flag
		}
		if err := fs.Set(a.Name, v); err != nil {
			return nil, fmt.Errorf("etcd args %s: --%s=%s: %w; etcd would refuse it: fix the value", what, a.Name, a.Value, err)
		}
		m.source[a.Name] = "--" + a.Name + " " + what
	}
	if getenv == nil {
		return m, nil
	}
	for name, k := range kinds {
		// ETCD_VERSION and the like are not settings etcd takes from the
		// environment as this package would read them (etcd ignores ETCD_VERSION).
		if m.IsSet(name) || k == kBoolSyntax {
			continue
		}
		key := FlagToEnv(name)
		v := getenv(key)
		if v == "" {
			continue
		}
		if err := fs.Set(name, v); err != nil {
			return nil, fmt.Errorf("%s=%s: %w; etcd would refuse it: fix the value", key, v, err)
		}
		m.source[name] = key
	}
	return m, nil
}

// Dropped is a variable left out of an exec'd etcd's environment, and why.
type Dropped struct{ Var, Why string }

// ExecEnv is the environment for an etcd started with args: environ without each
// ETCD_<FLAG> variable whose flag args also give (etcd refuses to start when both are
// set: "conflicting environment variable is shadowed by corresponding command-line
// flag"; the command line is what the operator wrote last), and without
// ETCD_VERSION, which etcd 3.4 reads as --version (measured: etcd 3.4.13 refuses
// ETCD_VERSION=3.4.13, "invalid value ... for ETCD_VERSION"; 3.5+ ignore it).
func ExecEnv(args []string, environ []string) (env []string, dropped []Dropped) {
	given := map[string]bool{}
	if split, err := Split(args); err == nil {
		for _, a := range split {
			given[FlagToEnv(a.Name)] = true
		}
	}
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case given[k]:
			dropped = append(dropped, Dropped{k, "the same flag is given after --"})
		case k == FlagToEnv("version"):
			dropped = append(dropped, Dropped{k, "etcd 3.4 reads it as --version (print the version and exit)"})
		default:
			env = append(env, kv)
		}
	}
	return env, dropped
}

// HasFlag tells whether args give the flag.
func HasFlag(args []string, name string) bool {
	split, err := Split(args)
	if err != nil {
		return false
	}
	for _, a := range split {
		if a.Name == name {
			return true
		}
	}
	return false
}

// IsFlagEnv tells whether key is the ETCD_<FLAG> variable of a flag this package
// reads (ETCD_DATA_DIR, ETCD_NAME, ...).
func IsFlagEnv(key string) bool {
	_, kinds := flagSet(&Member{})
	for name, k := range kinds {
		if k != kBoolSyntax && FlagToEnv(name) == key {
			return true
		}
	}
	return false
}
