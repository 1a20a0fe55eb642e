package rules

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/deviceless/deviceless/protocol"
)

// MaxFileSize bounds one rule file; rule files are written by people, not generated dumps.
const MaxFileSize = 4 << 20

// Parse decodes one rule file. Errors carry file:line:col.
func Parse(file string, data []byte) (*FileDef, error) {
	def := &FileDef{}
	if len(data) > MaxFileSize {
		return nil, Errors{errorf(Pos{File: file, Line: 1, Col: 1}, "file larger than %d bytes", MaxFileSize)}
	}
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, Errors{yamlError(file, err)}
	}
	if len(f.Docs) > 1 {
		return nil, Errors{errorf(nodePos(f.Docs[1]), "a rule file holds one YAML document").withFile(file)}
	}
	if len(f.Docs) == 0 || f.Docs[0].Body == nil {
		return def, nil
	}
	body := f.Docs[0].Body
	if _, ok := body.(*ast.MappingNode); !ok {
		if body.Type() == ast.NullType {
			return def, nil
		}
		return nil, Errors{errorf(nodePos(body), "a rule file is a mapping with `functions` and `rules`").withFile(file)}
	}
	if err := decodeStrict(body, def); err != nil {
		return nil, Errors{yamlError(file, err)}
	}
	setFile(def, file)
	return def, nil
}

func (e *Error) withFile(file string) *Error { e.Pos.File = file; return e }

// setFile stamps the file name on every position decoded from it.
func setFile(def *FileDef, file string) {
	for _, f := range def.Functions {
		f.Name.Pos.File = file
	}
	for _, r := range def.Rules {
		r.Pos.File = file
		r.Name.Pos.File = file
		for i := range r.On {
			r.On[i].Pos.File = file
		}
		r.If.Pos.File, r.Key.Pos.File = file, file
		if s := r.Schedule; s != nil {
			s.Pos.File, s.EveryPos.File, s.Cron.Pos.File, s.Zone.Pos.File = file, file, file, file
		}
		if r.Window != nil {
			r.Window.Of.Pos.File = file
		}
		for _, a := range r.Do {
			a.Pos.File = file
			if a.Invoke != nil {
				a.Invoke.Pos.File = file
			}
			for i := range a.Args {
				a.Args[i].Name.Pos.File = file
				a.Args[i].Expr.Pos.File = file
			}
			if a.Actuate != nil {
				a.Actuate.Line.Pos.File = file
				a.Actuate.Value.Pos.File = file
			}
			if a.Publish != nil {
				a.Publish.Topic.Pos.File = file
				a.Publish.Payload.Pos.File = file
			}
		}
	}
}

// IsTestFile reports whether a file name is a rule test file (name_test.yaml).
func IsTestFile(name string) bool {
	base := filepath.Base(name)
	return strings.HasSuffix(base, "_test.yaml") || strings.HasSuffix(base, "_test.yml")
}

func isYAML(name string) bool {
	return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")
}

// configKeys are top-level keys of Deviceless configuration files and of the Grafana and
// compose files shipped next to rules. A YAML file found while walking a folder whose
// top level has one of them and neither `functions` nor a list of rule mappings is not a
// rule file and is skipped; a file named explicitly is always loaded.
var configKeys = map[string]bool{
	"broker": true, "http": true, "influx": true, "id": true, "gpio": true, "podman": true,
	"runtimes": true, "apiVersion": true, "services": true, "datasources": true,
	"providers": true, "tests": true, "rule_files": true,
}

func looksLikeConfig(data []byte) bool {
	f, err := parser.ParseBytes(data, 0)
	if err != nil || len(f.Docs) == 0 {
		return false
	}
	m, ok := f.Docs[0].Body.(*ast.MappingNode)
	if !ok {
		return false
	}
	config := false
	for _, kv := range m.Values {
		k := kv.Key.String()
		if k == "functions" {
			return false
		}
		if k == "rules" {
			// A rule file's rules are mappings; a config's `rules` lists paths.
			if s, ok := kv.Value.(*ast.SequenceNode); ok && len(s.Values) > 0 {
				if _, ok := s.Values[0].(*ast.MappingNode); ok {
					return false
				}
			}
		}
		config = config || configKeys[k]
	}
	return config
}

// Expand turns files and folders into the list of rule files they name, in a stable
// order. Folders are walked recursively for *.yaml and *.yml files; test files
// (*_test.yaml), hidden entries and configuration files are skipped.
func Expand(paths []string) ([]string, error) {
	return expand(paths, false)
}

// ExpandTests is Expand for rule test files (*_test.yaml).
func ExpandTests(paths []string) ([]string, error) {
	return expand(paths, true)
}

func expand(paths []string, tests bool) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("rules: %w", err)
		}
		if !st.IsDir() {
			add(p)
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			name := d.Name()
			if path != p && strings.HasPrefix(name, ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.IsDir() || !isYAML(name) || IsTestFile(name) != tests {
				return nil
			}
			if !tests {
				data, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				if looksLikeConfig(data) {
					return nil
				}
			}
			found = append(found, path)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("rules: reading %s: %w", p, err)
		}
		sort.Strings(found)
		for _, f := range found {
			add(f)
		}
	}
	return out, nil
}

// Load reads rule files and folders (see Expand), merges them and compiles the result.
// All problems are returned together as Errors, each with file:line:col.
func Load(paths []string, opts Options) (*Set, error) {
	files, defs, err := parseAll(paths)
	if err != nil {
		return nil, err
	}
	set, err := Compile(defs, opts)
	if err != nil {
		return nil, appendErrors(nil, err)
	}
	set.files = files
	return set, nil
}

// parseAll expands paths and parses every rule file, reporting the syntax errors of all
// files together. Compiling the files that did parse would report their references into
// the broken ones as unknown, so syntax comes first.
func parseAll(paths []string) ([]string, []*FileDef, error) {
	files, err := Expand(paths)
	if err != nil {
		return nil, nil, err
	}
	var defs []*FileDef
	var errs Errors
	for _, f := range files {
		data, err := readFile(f)
		if err != nil {
			return nil, nil, err
		}
		def, err := Parse(f, data)
		if err != nil {
			errs = appendErrors(errs, err)
			continue
		}
		for _, e := range loadModules(f, def) {
			errs = append(errs, e)
		}
		defs = append(defs, def)
	}
	if len(errs) > 0 {
		return nil, nil, errs
	}
	return files, defs, nil
}

func readFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	defer f.Close()
	// One byte more than allowed, so Parse can tell a too-large file from a full one.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("rules: reading %s: %w", name, err)
	}
	return data, nil
}

func appendErrors(errs Errors, err error) Errors {
	var es Errors
	if errors.As(err, &es) {
		return append(errs, es...)
	}
	var e *Error
	if errors.As(err, &e) {
		return append(errs, e)
	}
	return append(errs, &Error{Msg: err.Error()})
}

// loadModules reads the module files of file's wasm functions (paths relative to the rule
// file), checks that each is a WebAssembly binary, keeps its bytes in the function's
// definition and names it by digest in the spec, as invocations carry it.
func loadModules(file string, def *FileDef) []*Error {
	var errs []*Error
	for _, fd := range def.Functions {
		s := &fd.Spec
		if s.Runtime != protocol.RuntimeWasm || s.Module == "" {
			continue
		}
		if protocol.IsModuleDigest(s.Module) {
			errs = append(errs, errorf(fd.Name.Pos, "function %q: module %s: a rule file names its module's file (a path relative to the rule file), not a digest",
				fd.Name.Value, s.Module))
			continue
		}
		path := s.Module
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(file), path)
		}
		b, err := readModule(path)
		if err != nil {
			errs = append(errs, errorf(fd.Name.Pos, "function %q: %v", fd.Name.Value, err))
			continue
		}
		fd.Module, s.Module = b, protocol.ModuleDigest(b)
	}
	return errs
}

// readModule reads a module file of at most protocol.MaxModuleSize bytes and checks that it
// is a WebAssembly binary.
func readModule(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("module: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, protocol.MaxModuleSize+1))
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", path, err)
	}
	if err := protocol.CheckModule(b); err != nil {
		return nil, fmt.Errorf("module %s: %w", path, err)
	}
	return b, nil
}
