package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A function's defaults and floor, written once: rule files, the engine and the agent's own
// functions all apply these (docs/design.md, "Functions").
const (
	DefaultTimeout  = 10 * time.Second
	DefaultMemory   = Size(64 << 20)
	MinMemory       = Size(4 << 20)  // below this a container cannot start
	MinWasmMemory   = Size(64 << 10) // one WebAssembly page
	DefaultWarmIdle = time.Minute
)

// FunctionSpec is the one definition of a function: an image plus a command, a runtime
// (a named image the agent maps) plus inline code, or the runtime wasm plus a module. Rule files and the agent's config decode
// into it (yaml), invocations carry it (json), and the agent runs it.
type FunctionSpec struct {
	Description string  `json:"description,omitempty" yaml:"description"`
	Runtime     string  `json:"runtime,omitempty" yaml:"runtime"`
	Image       string  `json:"image,omitempty" yaml:"image"`
	Command     Command `json:"command,omitempty" yaml:"command"`
	Code        string  `json:"code,omitempty" yaml:"code"`
	// Module is a wasm function's WebAssembly module: in a rule file or a deploy, a file
	// path (relative to the file naming it); everywhere after, its digest (sha256:<hex>).
	Module  string            `json:"module,omitempty" yaml:"module"`
	Timeout Duration          `json:"timeout,omitzero" yaml:"timeout"`
	Memory  Size              `json:"memory,omitempty" yaml:"memory"` // bytes
	Env     map[string]string `json:"env,omitempty" yaml:"env"`
	Warm    *Warm             `json:"warm,omitempty" yaml:"warm"`
}

// Warm keeps a long-lived runner for a function: stopped after Idle without use, recycled
// after MaxUses invocations (0: no limit).
type Warm struct {
	Idle    Duration `json:"idle,omitzero" yaml:"idle"`
	MaxUses int      `json:"max_uses,omitempty" yaml:"max_uses"`
}

// WithDefaults returns s with the default timeout, memory and warm idle time filled in.
func (s FunctionSpec) WithDefaults() FunctionSpec {
	if s.Timeout == 0 {
		s.Timeout = Duration(DefaultTimeout)
	}
	if s.Memory == 0 {
		s.Memory = DefaultMemory
	}
	if s.Warm != nil && s.Warm.Idle == 0 {
		w := *s.Warm
		w.Idle = Duration(DefaultWarmIdle)
		s.Warm = &w
	}
	return s
}

// Validate reports every problem of s, each a *FieldError naming its field. Zero timeout
// and memory mean the defaults. Whether a runtime exists is for the agent that runs it to
// say.
func (s FunctionSpec) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Err: fmt.Errorf(format, args...)})
	}
	switch {
	case s.Runtime == "" && s.Image == "":
		add("runtime", "needs `runtime` (with `code`) or `image`")
	case s.Runtime != "" && s.Image != "":
		add("image", "has both `runtime` and `image`; choose one")
	case s.Runtime == RuntimeWasm && s.Module == "":
		add("module", "a wasm function needs `module` (a .wasm file)")
	case s.Runtime == RuntimeWasm && s.Code != "":
		add("code", "a wasm function runs its `module`, it has no inline `code`")
	case s.Runtime != RuntimeWasm && s.Module != "":
		add("module", "`module` needs `runtime: wasm`")
	case s.Runtime != "" && s.Code == "" && len(s.Command) == 0 && s.Runtime != RuntimeWasm:
		add("code", "a runtime function needs `code` (or a `command`)")
	case s.Image != "" && s.Code != "":
		add("code", "inline `code` needs a `runtime`, not an `image`")
	}
	if strings.ContainsAny(s.Runtime, "/ ") {
		add("runtime", "runtime %q: a name without '/' or spaces", s.Runtime)
	}
	if s.Timeout < 0 {
		add("timeout", "timeout %s: must not be negative", s.Timeout.D())
	}
	if s.Memory < 0 {
		add("memory", "memory %d: must not be negative", s.Memory)
	} else if s.Runtime == RuntimeWasm && s.Memory > 0 && s.Memory < MinWasmMemory {
		add("memory", "memory %d bytes is below one WebAssembly page (%s)", s.Memory, MinWasmMemory)
	} else if s.Runtime != RuntimeWasm && s.Memory > 0 && s.Memory < MinMemory {
		add("memory", "memory %d bytes is below the %s a container needs", s.Memory, MinMemory)
	}
	if s.Warm != nil && s.Warm.Idle < 0 {
		add("warm.idle", "warm.idle %s: must not be negative", s.Warm.Idle.D())
	}
	if s.Warm != nil && s.Warm.MaxUses < 0 {
		add("warm.max_uses", "warm.max_uses must not be negative")
	}
	return errors.Join(errs...)
}

// FieldError is one problem of a spec and the path of the field it concerns (`timeout`,
// `warm.idle`), so that an API can point at it. Its message is the problem's alone.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Err.Error() }

func (e *FieldError) Unwrap() error { return e.Err }

// Pick values of a Target.
const (
	PickOne = "one"
	PickAll = "all"
)

// Target selects agents: one by id, or by labels (every label must match); Pick is "one"
// (default: the least loaded) or "all".
type Target struct {
	Agent  string            `json:"agent,omitempty" yaml:"agent"`
	Labels map[string]string `json:"labels,omitempty" yaml:"labels"`
	Pick   string            `json:"pick,omitempty" yaml:"pick"`
	// Runtime, set by the engine from the function it dispatches (SpecRuntime), keeps only
	// the agents that run it (Status.Runs). It never travels.
	Runtime string `json:"-" yaml:"-"`
	// Tenant, set by the engine for a function deployed under a namespace, keeps only the
	// agents whose `tenants` label admits it (AdmitsTenant). It never travels: requests
	// and rule files cannot set it.
	Tenant string `json:"-" yaml:"-"`
}

// TenantsLabel is the agent label that lists the namespaces whose deployed functions
// the agent runs: `tenants: alice,bob`, or `*` for every namespace (docs/security.md).
const TenantsLabel = "tenants"

// AdmitsTenant reports whether an agent with these labels runs functions of tenant: its
// `tenants` label lists it (names separated by commas or spaces) or is `*`. An agent
// without the label runs no tenant's functions. Every agent admits the empty tenant.
func AdmitsTenant(labels map[string]string, tenant string) bool {
	if tenant == "" {
		return true
	}
	for _, t := range strings.FieldsFunc(labels[TenantsLabel], func(r rune) bool { return r == ',' || r == ' ' }) {
		if t == tenant || t == "*" {
			return true
		}
	}
	return false
}

// Normalize returns t with its default pick, or an error naming what is wrong.
func (t Target) Normalize() (Target, error) {
	var errs []error
	switch t.Pick {
	case "":
		t.Pick = PickOne
	case PickOne, PickAll:
	default:
		errs = append(errs, fmt.Errorf("target pick %q: use `one` or `all`", t.Pick))
	}
	if t.Agent != "" && len(t.Labels) > 0 {
		errs = append(errs, errors.New("target takes `agent` or `labels`, not both"))
	}
	return t, errors.Join(errs...)
}

func (t Target) String() string {
	b, _ := json.Marshal(t)
	s := string(b)
	if t.Runtime == RuntimeWasm {
		s += " running wasm"
	}
	if t.Tenant != "" {
		s += " for tenant " + t.Tenant + " (agents labelled " + TenantsLabel + ": " + t.Tenant + ")"
	}
	return s
}

// Command is a command line: one string or a list of them in YAML.
type Command []string

// UnmarshalYAML accepts a scalar or a sequence of scalars.
func (c *Command) UnmarshalYAML(unmarshal func(any) error) error {
	var one string
	if err := unmarshal(&one); err == nil {
		*c = Command{one}
		return nil
	}
	var list []string
	if err := unmarshal(&list); err != nil {
		return errors.New("expected a string or a list of strings")
	}
	*c = list
	return nil
}

// Size is a number of bytes. It travels in JSON as a number and is written in YAML (or a
// JSON string) as 64Mi, 512Ki, 1Gi, 64MiB, 32M, 1G, 512k or a plain number.
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9},
	{"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"B", 1},
}

// ParseSize parses a size such as 64Mi.
func ParseSize(s string) (Size, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q: expected a number with an optional unit such as 32Mi, 512Ki, 1Gi", s)
	}
	return Size(v * mult), nil
}

// String writes the size with the largest binary unit that divides it.
func (s Size) String() string {
	for _, u := range []struct {
		suffix string
		mult   Size
	}{{"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}} {
		if s != 0 && s%u.mult == 0 {
			return strconv.FormatInt(int64(s/u.mult), 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// UnmarshalText parses a size (YAML scalars).
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// UnmarshalJSON reads a number of bytes or a size string.
func (s *Size) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		return s.UnmarshalText([]byte(str))
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("size must be a number of bytes or a string like \"64Mi\", got %s", b)
	}
	if n < 0 {
		return fmt.Errorf("size %d: must not be negative", n)
	}
	*s = Size(n)
	return nil
}

// ParseDuration parses a Go duration ("500ms", "30s", "1h30m") or "0"; negative durations
// are refused.
func ParseDuration(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q: expected a number with a unit such as 500ms, 30s, 5m, 1h", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("negative duration %q", s)
	}
	return v, nil
}

// UnmarshalText parses a duration (YAML scalars).
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
