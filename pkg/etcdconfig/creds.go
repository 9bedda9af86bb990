package etcdconfig

import (
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"
)

// credsWhat names ETCD_CREDS in messages.
const credsWhat = "ETCD_CREDS (--etcd-server-extra-args)"

// Creds is ETCD_CREDS, the extra flags of every etcd a step starts, read into the
// model and filtered for the steps.
type Creds struct {
	*Member
	// StepArgs go to every step's etcd: ETCD_CREDS without the flags a step sets
	// itself (see Stripped).
	StepArgs []string
	// Stripped are the flags left out of StepArgs, each with why, for the log.
	Stripped []Stripped
	// RaftArgs are the raft timing flags (--heartbeat-interval,
	// --election-timeout) when singleMember stripped them from StepArgs: a
	// member the data shows to be one of several still gets them
	// (etcdproc.Member.RaftArgs).
	RaftArgs []string
	// What names where the flags came from, for messages.
	What string
}

// Stripped is one ETCD_CREDS flag the steps do not get.
type Stripped struct {
	Flag, Why string
}

// stripped: flags that tune what a step does, which the step sets itself (they come
// last on its command line and would win). The served etcd gets them from the args
// after "--".
var stripped = map[string]string{
	"snapshot-count": "a step sets its own to save the snapshot it waits for",
	// Logging: the step reads its etcd's JSON log lines on stderr.
	"logger":                   "a step reads its etcd's log on stderr",
	"log-outputs":              "a step reads its etcd's log on stderr",
	"log-level":                "a step reads its etcd's log on stderr",
	"log-format":               "a step reads its etcd's log on stderr",
	"log-package-levels":       "a step reads its etcd's log on stderr",
	"debug":                    "a step reads its etcd's log on stderr",
	"enable-log-rotation":      "a step reads its etcd's log on stderr",
	"log-rotation-config-json": "a step reads its etcd's log on stderr",
	// Client TLS: the step's private client listener is migrate's own.
	"cert-file":                    "the step's private client listener is migrate's own",
	"key-file":                     "the step's private client listener is migrate's own",
	"trusted-ca-file":              "the step's private client listener is migrate's own",
	"client-cert-auth":             "the step's private client listener is migrate's own",
	"auto-tls":                     "the step's private client listener is migrate's own",
	"client-crl-file":              "the step's private client listener is migrate's own",
	"client-cert-file":             "the step's private client listener is migrate's own",
	"client-key-file":              "the step's private client listener is migrate's own",
	"client-cert-allowed-hostname": "the step's private client listener is migrate's own",
	// Bootstrap only: a step runs etcd on data that has a WAL, where etcd ignores them.
	"initial-cluster-state":             "etcd ignores it on data with a WAL, and a step never bootstraps",
	"initial-cluster-token":             "etcd ignores it on data with a WAL, and a step never bootstraps",
	"enable-v2":                         "a step enables the v2 API itself for etcd2 data",
	"downgrade-check-time":              "a step sets its own for rollbacks",
	"experimental-downgrade-check-time": "a step sets its own for rollbacks",
}

// refused: flags that would move the data or the member away from what migrate
// checked, or listen where the private step must not.
var refused = map[string]string{
	"data-dir":                    "the steps run on the data dir migrate checked and locked: remove it from ETCD_CREDS (the data dir is --data-dir/DATA_DIRECTORY)",
	"config-file":                 "etcd would then ignore every other flag and the data dir migrate checked: give the settings as flags",
	"force-new-cluster":           "it would rewrite the membership stored in the data at every step: remove it from ETCD_CREDS",
	"name":                        "the steps' member name is --name/ETCD_NAME: remove it from ETCD_CREDS",
	"initial-cluster":             "the steps' initial cluster is --initial-cluster/INITIAL_CLUSTER: remove it from ETCD_CREDS",
	"initial-advertise-peer-urls": "the steps' advertised peer URLs are --initial-advertise-peer-urls/INITIAL_ADVERTISE_PEER_URLS: remove it from ETCD_CREDS",
	"advertise-client-urls":       "the steps advertise their private client URL: give the served etcd its client URLs after --",
	"listen-client-urls":          "the steps listen on their private client URL (LISTEN_CLIENT_URLS, --port): give the served etcd its listen URLs after --",
	"listen-client-http-urls":     "the steps serve their private client URL only: give the served etcd its listen URLs after --",
	"listen-peer-urls":            "the steps' peer URLs are --listen-peer-urls/LISTEN_PEER_URLS: give the served etcd its listen URLs after --",
}

// raftTiming: the step sets a fast timing of its own for a lone member; for several
// members raft timing is left as the cluster has it.
var raftTiming = map[string]bool{"heartbeat-interval": true, "election-timeout": true}

// ParseCreds reads ETCD_CREDS (flags separated by white space) and filters it for
// the steps: the flags a step sets itself are stripped (Stripped says which and
// why), the ones that would move the data, the WAL or the member identity, or open a
// non-loopback listener, are refused. singleMember: the step runs a lone member (it
// then sets its own raft timing).
func ParseCreds(s string, singleMember bool) (*Creds, error) {
	return parseCreds(strings.Fields(s), singleMember, credsWhat)
}

// PeerTLSCreds are the steps' extra flags when ETCD_CREDS is unset: the served
// etcd's peer TLS settings (its --peer-* flags after "--", and the ETCD_PEER_*
// variables it reads, which a step's etcd does not see), so that peer URLs taken
// from the served etcd's settings come with their certificates.
func PeerTLSCreds(served *Member, singleMember bool) (*Creds, error) {
	var args []string
	given := map[string]bool{}
	for _, a := range served.Args {
		if strings.HasPrefix(a.Name, "peer-") {
			args = append(args, a.Tokens...)
			given[a.Name] = true
		}
	}
	n := len(args)
	for name, src := range served.source {
		if strings.HasPrefix(name, "peer-") && !given[name] && src == FlagToEnv(name) {
			args = append(args, "--"+name+"="+served.value(name))
		}
	}
	// The variables come in map order: sort what was appended after the args.
	sortTail(args, n)
	return parseCreds(args, singleMember, PeerTLSWhat)
}

// PeerTLSWhat names the served etcd's peer TLS settings in messages.
const PeerTLSWhat = "the peer TLS settings after -- (ETCD_CREDS is unset)"

func parseCreds(fields []string, singleMember bool, what string) (*Creds, error) {
	split, err := Split(fields)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	m, err := fromArgs(split, nil, "in "+what)
	if err != nil {
		return nil, err
	}
	c := &Creds{Member: m, StepArgs: []string{}, What: what}
	for _, a := range split {
		if a.Name == "wal-dir" {
			return nil, WALDirError(a.String() + " in ETCD_CREDS")
		}
		if strings.HasPrefix(a.Name, "listen-") {
			if err := loopbackOnly(a); err != nil {
				return nil, err
			}
		}
		if why, ok := refused[a.Name]; ok {
			return nil, fmt.Errorf("%s sets %s: %s", what, a.String(), why)
		}
		why, strip := stripped[a.Name]
		if raftTiming[a.Name] && singleMember {
			strip, why = true, "a step sets its own for a lone member (kept if the data records several members)"
			c.RaftArgs = append(c.RaftArgs, a.Tokens...)
		}
		if strip {
			c.Stripped = append(c.Stripped, Stripped{Flag: a.String(), Why: why})
			continue
		}
		c.StepArgs = append(c.StepArgs, a.Tokens...)
	}
	return c, nil
}

// loopbackOnly refuses a listener flag with a non-loopback URL: the migration etcd is
// private.
func loopbackOnly(a Arg) error {
	for _, raw := range strings.Split(a.Value, ",") {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || !IsLoopback(u.Hostname()) {
			return fmt.Errorf("%s sets --%s=%s: the migration etcd listens on loopback only; give the final etcd its listen URLs after --", credsWhat, a.Name, a.Value)
		}
	}
	return nil
}

// IsLoopback reports whether host (a URL's host name) is a loopback address or
// localhost.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// WALDirError refuses a WAL dir in ETCD_CREDS: the served etcd's own (--wal-dir
// after --, ETCD_WAL_DIR) is the one the steps, the backup and the checks use.
// setting is how it was given.
func WALDirError(setting string) error {
	return fmt.Errorf("%s: the WAL dir is the served etcd's setting, not the steps' alone: give it as --wal-dir after -- or as ETCD_WAL_DIR, and remove it from ETCD_CREDS", setting)
}

// sortTail sorts the "--name=value" tokens of args from index i on (they hold one
// token each).
func sortTail(args []string, i int) {
	if i < len(args) {
		sort.Strings(args[i:])
	}
}
