package engine

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/deviceless/deviceless/broker"
	"github.com/deviceless/deviceless/internal/atomicfile"
	"github.com/deviceless/deviceless/metrics"
	"github.com/deviceless/deviceless/protocol"
	"github.com/deviceless/deviceless/rules"
)

// Functions as a service (docs/functions.md): functions deployed through the HTTP API,
// each change a new immutable version, kept in the engine's store, resolved at each
// invocation, metered (usage.go) and logged per function.

// FunctionsConfig is the `functions:` block of deviceless.yaml. Deployed functions
// (functions.jsonl) and usage figures (usage.jsonl) live in the engine's state folder
// (Config.State); without one they live in memory and are lost at a restart.
type FunctionsConfig struct {
	// Logs is how many finished invocations each function keeps for `deviceless logs`.
	Logs int `yaml:"logs"`
	// UsageFlush is how often usage figures are appended to the state folder; an engine
	// killed (not stopped) loses at most this much of them.
	UsageFlush time.Duration `yaml:"usage_flush"`
	// UsageRetention is how long usage figures are kept; per minute for the last two
	// days, per hour beyond.
	UsageRetention time.Duration `yaml:"usage_retention"`
}

// Defaults of the functions block.
const (
	DefaultFunctionLogs   = 20
	DefaultUsageFlush     = 10 * time.Second
	DefaultUsageRetention = 90 * 24 * time.Hour
)

func (c FunctionsConfig) withDefaults() FunctionsConfig {
	if c.Logs <= 0 {
		c.Logs = DefaultFunctionLogs
	}
	if c.UsageFlush <= 0 {
		c.UsageFlush = DefaultUsageFlush
	}
	if c.UsageRetention <= 0 {
		c.UsageRetention = DefaultUsageRetention
	}
	return c
}

func (c FunctionsConfig) validate() error {
	var errs []error
	if c.Logs > 1000 {
		errs = append(errs, fmt.Errorf("functions.logs: %d is more than 1000", c.Logs))
	}
	if c.UsageRetention != 0 && c.UsageRetention < 48*time.Hour {
		errs = append(errs, fmt.Errorf("functions.usage_retention: %s is less than 48h", c.UsageRetention))
	}
	return errors.Join(errs...)
}

// FunctionDeploy is the body of PUT /api/v1/functions/{name} and the content of a deploy
// file: a function spec (runtime and code, or image and command; timeout, memory, env,
// warm, description), its default target, and who besides its namespace's owner may
// invoke it.
type FunctionDeploy struct {
	protocol.FunctionSpec `yaml:",inline"`
	// Target is where invocations go when they name no agent or labels themselves.
	Target *protocol.Target `json:"target,omitempty" yaml:"target"`
	// Invokers may invoke a function deployed under a namespace besides its owner and
	// admins: user or token names ("bob", "user:bob", "token:ci") or "*" (everybody who
	// may invoke). Functions outside a namespace are open to every client.
	Invokers []string `json:"invokers,omitempty" yaml:"invokers"`
	// ModuleWasm is a wasm function's module (base64 in JSON), sent with the deploy: the
	// engine stores it by digest and the version's module is that digest. Never stored
	// in the version itself.
	ModuleWasm []byte `json:"module_wasm,omitempty" yaml:"-"`
}

// Function names: a rule file's, plus a namespace before the first '.'.
var (
	functionNameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	namespaceRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)
	maxFunctionName = 128
)

func validFunctionName(name string) error {
	switch {
	case name == "":
		return errors.New("a function needs a name")
	case len(name) > maxFunctionName:
		return fmt.Errorf("function name of %d bytes: at most %d", len(name), maxFunctionName)
	case !functionNameRE.MatchString(name):
		return fmt.Errorf("function name %q: use letters, digits, '_', '-' and '.' ('@' separates a version)", name)
	case strings.HasSuffix(name, ".") || strings.Contains(name, ".."):
		return fmt.Errorf("function name %q: '.' separates a namespace from a name, neither may be empty", name)
	}
	return nil
}

func validNamespace(ns string) error {
	if !namespaceRE.MatchString(ns) {
		return fmt.Errorf("%q is not a namespace: letters, digits, '_' and '-', no '.'", ns)
	}
	return nil
}

// namespaceOf is the namespace of a deployed function's name: what comes before its first
// '.' (alice.fan-speed: alice), or "" for a name without one.
func namespaceOf(name string) string {
	ns, _, ok := strings.Cut(name, ".")
	if !ok {
		return ""
	}
	return ns
}

// splitRef splits a function reference, name or name@version; version 0 means the latest.
func splitRef(ref string) (name string, version int, err error) {
	name, v, ok := strings.Cut(ref, "@")
	if !ok {
		return ref, 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || strconv.Itoa(n) != v {
		return name, 0, fmt.Errorf("function %q: a version is a number from 1, as in %s@2", ref, name)
	}
	return name, n, nil
}

func versionRef(name string, version int) string { return name + "@" + strconv.Itoa(version) }

// functionVersion is one immutable version of a deployed function.
type functionVersion struct {
	Version int
	At      time.Time
	By      string // the caller that deployed it
	Digest  string // sha256 of what runs: the spec with its defaults
	Def     FunctionDeploy
	fn      *rules.Function // Name is the version's reference (name@N), Spec has the defaults
}

// deployedFunction is a name's versions, oldest first. A deleted function keeps its last
// version number, so that a new deploy under the name continues after it: name@N never
// means two different functions.
type deployedFunction struct {
	name     string
	versions []*functionVersion // nil once deleted
	last     int
	deleted  time.Time
}

func (d *deployedFunction) latest() *functionVersion {
	if len(d.versions) == 0 {
		return nil
	}
	return d.versions[len(d.versions)-1]
}

// functionRecord is one line of functions.jsonl: a deploy (a new version) or a delete.
type functionRecord struct {
	Op       string          `json:"op"` // deploy or delete
	Name     string          `json:"name"`
	Version  int             `json:"version"`
	At       time.Time       `json:"at"`
	By       string          `json:"by"`
	Function *FunctionDeploy `json:"function,omitempty"`
}

// functionRegistry holds the deployed functions, their store, their usage and logs.
type functionRegistry struct {
	cfg   FunctionsConfig
	log   *slog.Logger
	now   func() time.Time
	roles map[string]broker.Role // broker users' roles, for MQTT callers
	sink  metrics.Sink           // deviceless_usage points

	mu     sync.RWMutex
	byName map[string]*deployedFunction
	store  *appendLog // nil: in memory

	usage   *usageMeter
	logs    *functionLogs
	modules *moduleFiles // deployed wasm functions' modules
}

// openFunctions loads the deployed functions and usage figures kept in dir (the engine's
// state folder; "": in memory only).
func openFunctions(dir string, cfg FunctionsConfig, users []broker.User, log *slog.Logger, now func() time.Time) (*functionRegistry, error) {
	f := &functionRegistry{cfg: cfg, log: log, now: now, roles: map[string]broker.Role{}, sink: metrics.Nop{},
		byName: map[string]*deployedFunction{}, logs: newFunctionLogs(cfg.Logs)}
	for _, u := range users {
		f.roles[u.Username] = u.Role
	}
	if dir == "" {
		log.Warn("deployed functions and usage are kept in memory only: set state (or broker.store) to keep them across restarts")
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	if dir != "" {
		store, lines, err := openAppendLog(filepath.Join(dir, "functions.jsonl"), log)
		if err != nil {
			return nil, fmt.Errorf("state: %w", err)
		}
		for i, line := range lines {
			var rec functionRecord
			if err := json.Unmarshal(line, &rec); err != nil {
				store.Close()
				return nil, fmt.Errorf("state: %s line %d: %w", store.path, i+1, err)
			}
			if err := f.apply(rec); err != nil {
				store.Close()
				return nil, fmt.Errorf("state: %s line %d: %w", store.path, i+1, err)
			}
		}
		f.store = store
	}
	var err error
	if f.modules, err = openModuleFiles(dir); err != nil {
		f.close()
		return nil, err
	}
	if f.usage, err = openUsage(dir, cfg, log, now); err != nil {
		f.close()
		return nil, err
	}
	return f, nil
}

// close stores the last usage figures and closes the store.
func (f *functionRegistry) close() {
	if f.usage != nil {
		if err := f.usage.flush(); err != nil {
			f.log.Error("usage figures not stored", "err", err)
		}
	}
	if f.store != nil {
		f.store.Close()
	}
	if f.usage != nil {
		f.usage.close()
	}
}

// apply adds a record to the registry (f.mu held, or not yet shared).
func (f *functionRegistry) apply(rec functionRecord) error {
	d := f.byName[rec.Name]
	switch rec.Op {
	case "deploy":
		if rec.Function == nil {
			return fmt.Errorf("deploy of %s without a function", rec.Name)
		}
		if d == nil {
			d = &deployedFunction{name: rec.Name}
			f.byName[rec.Name] = d
		}
		if rec.Version <= d.last {
			return fmt.Errorf("%s: version %d after version %d", rec.Name, rec.Version, d.last)
		}
		d.versions = append(d.versions, newVersion(rec.Name, rec.Version, rec.At, rec.By, *rec.Function))
		d.last, d.deleted = rec.Version, time.Time{}
	case "delete":
		if d == nil {
			return fmt.Errorf("delete of unknown function %s", rec.Name)
		}
		d.versions, d.deleted = nil, rec.At
	default:
		return fmt.Errorf("unknown operation %q", rec.Op)
	}
	return nil
}

func newVersion(name string, n int, at time.Time, by string, def FunctionDeploy) *functionVersion {
	spec := def.FunctionSpec.WithDefaults()
	b, _ := json.Marshal(spec)
	sum := sha256.Sum256(b)
	return &functionVersion{Version: n, At: at, By: by, Def: def, Digest: "sha256:" + hex.EncodeToString(sum[:]),
		fn: &rules.Function{Name: versionRef(name, n), Spec: spec}}
}

// version returns the version ref names: the latest for a bare name.
func (f *functionRegistry) version(ref string) (*functionVersion, error) {
	name, n, err := splitRef(ref)
	if err != nil {
		return nil, err
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	d := f.byName[name]
	switch {
	case d == nil:
		return nil, fmt.Errorf("%w %q", ErrUnknownFunction, ref)
	case d.versions == nil:
		return nil, fmt.Errorf("%w %q: deleted at %s", ErrUnknownFunction, ref, d.deleted.Format(time.RFC3339))
	case n == 0:
		return d.latest(), nil
	case n > d.last:
		return nil, fmt.Errorf("%w %q: %s has versions 1 to %d", ErrUnknownFunction, ref, name, d.last)
	}
	for _, v := range d.versions {
		if v.Version == n {
			return v, nil
		}
	}
	return nil, fmt.Errorf("%w %q: version %d was deleted with the function; its versions are %d to %d",
		ErrUnknownFunction, ref, n, d.versions[0].Version, d.last)
}

// exists reports whether ref names a deployed version (rules.Options.Deployed).
func (f *functionRegistry) exists(ref string) bool {
	_, err := f.version(ref)
	return err == nil
}

// deploy stores def as the next version of name, unless it equals the latest version
// (then that is returned with created false).
func (f *functionRegistry) deploy(name string, def FunctionDeploy, by string) (*functionVersion, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.byName[name]
	if d != nil {
		if v := d.latest(); v != nil && sameDeploy(v.Def, def) {
			return v, false, nil
		}
	}
	last := 0
	if d != nil {
		last = d.last
	}
	rec := functionRecord{Op: "deploy", Name: name, Version: last + 1, At: f.now().UTC(), By: by, Function: &def}
	if err := f.persist(rec); err != nil {
		return nil, false, err
	}
	if err := f.apply(rec); err != nil {
		return nil, false, err
	}
	return f.byName[name].latest(), true, nil
}

func sameDeploy(a, b FunctionDeploy) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// remove deletes every version of name.
func (f *functionRegistry) remove(name, by string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.byName[name]
	if d == nil || d.versions == nil {
		return fmt.Errorf("%w %q", ErrUnknownFunction, name)
	}
	rec := functionRecord{Op: "delete", Name: name, Version: d.last, At: f.now().UTC(), By: by}
	if err := f.persist(rec); err != nil {
		return err
	}
	f.logs.drop(name)
	return f.apply(rec)
}

func (f *functionRegistry) persist(rec functionRecord) error {
	if f.store == nil {
		return nil
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := f.store.Append(b); err != nil {
		return fmt.Errorf("storing the function: %w", err)
	}
	return nil
}

// deployedNames returns the deployed (not deleted) functions, sorted by name, with their
// versions.
func (f *functionRegistry) deployedNames() []*deployedFunction {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]*deployedFunction, 0, len(f.byName))
	for _, d := range f.byName {
		if d.versions != nil {
			c := *d
			c.versions = slices.Clone(d.versions)
			out = append(out, &c)
		}
	}
	slices.SortFunc(out, func(a, b *deployedFunction) int { return strings.Compare(a.name, b.name) })
	return out
}

// appendLog is a file of JSON lines, each appended and synced before Append returns.
type appendLog struct {
	path string
	f    *os.File
}

// openAppendLog reads the lines of path and opens it for appending. A last line without
// its newline (the engine died while writing it) is cut off and logged.
func openAppendLog(path string, log *slog.Logger) (*appendLog, [][]byte, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	var lines [][]byte
	good := 0
	for {
		i := bytes.IndexByte(data[good:], '\n')
		if i < 0 {
			break
		}
		if line := data[good : good+i]; len(bytes.TrimSpace(line)) > 0 {
			lines = append(lines, line)
		}
		good += i + 1
	}
	if good < len(data) {
		log.Warn("store: cutting off an incomplete last line", "file", path, "bytes", len(data)-good)
		if err := f.Truncate(int64(good)); err != nil {
			f.Close()
			return nil, nil, err
		}
	}
	if _, err := f.Seek(int64(good), io.SeekStart); err != nil {
		f.Close()
		return nil, nil, err
	}
	return &appendLog{path: path, f: f}, lines, nil
}

// Append writes one line and syncs it.
func (l *appendLog) Append(line []byte) error {
	if _, err := l.f.Write(append(line, '\n')); err != nil {
		return err
	}
	return l.f.Sync()
}

// Rewrite replaces the file's content with lines, atomically: a crash leaves the old
// content or the new one.
func (l *appendLog) Rewrite(lines [][]byte) error {
	err := atomicfile.Write(l.path, 0o600, func(w io.Writer) error {
		for _, line := range lines {
			if _, err := w.Write(append(line, '\n')); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	nf, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	l.f.Close()
	l.f = nf
	return nil
}

// Close closes the file.
func (l *appendLog) Close() error { return l.f.Close() }
