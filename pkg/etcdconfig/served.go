package etcdconfig

import "fmt"

// ParseServed reads the served etcd's settings: the args after "--" and, for what they
// do not give, the ETCD_* variables etcd reads. A config file is refused: migrate
// must see where the data and the WAL are.
func ParseServed(args []string, getenv func(string) string) (*Member, error) {
	m, err := Parse(args, getenv, "after --")
	if err != nil {
		return nil, err
	}
	if m.ConfigFile != "" {
		return nil, fmt.Errorf("etcd's config file (%s) is not supported: etcd would ignore every other flag and variable, and migrate could not see its data dir; give the settings as flags after --", m.setting("config-file"))
	}
	return m, nil
}

// setting is a flag as the operator gave it: "--x=v after --" or "ETCD_X=v".
func (m *Member) setting(name string) string {
	src := m.source[name]
	v := m.value(name)
	if src == FlagToEnv(name) {
		return src + "=" + v
	}
	return "--" + name + "=" + v + " " + trimFlag(src, name)
}

func trimFlag(src, name string) string {
	return src[len("--"+name+" "):]
}

// value is the last value args give for name, else what the environment gave.
func (m *Member) value(name string) string {
	if m.fs == nil {
		return ""
	}
	if f := m.fs.Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

// Tokens is the command line m was read from.
func (m *Member) Tokens() []string {
	var out []string
	for _, a := range m.Args {
		out = append(out, a.Tokens...)
	}
	return out
}
