//go:build !agentonly

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/parser"

	"github.com/deviceless/deviceless/engine"
	"github.com/deviceless/deviceless/protocol"
)

// apiClient talks to the engine's HTTP API with the credentials of the flags or the
// environment, as `deviceless invoke` does.
type apiClient struct {
	addr, token, user *string
	timeout           *time.Duration
}

func apiFlags(fs *flag.FlagSet) *apiClient {
	return &apiClient{
		addr:    fs.String("http", "127.0.0.1:8080", "the engine's HTTP API address"),
		token:   fs.String("token", os.Getenv("DEVICELESS_TOKEN"), "API token (default $DEVICELESS_TOKEN)"),
		user:    fs.String("user", os.Getenv("DEVICELESS_USER"), "USER:PASSWORD of a broker user (default $DEVICELESS_USER)"),
		timeout: fs.Duration("wait", 30*time.Second, "give up waiting for the engine after this long"),
	}
}

// do sends a request (body as JSON when not nil) and returns the status and body; an error
// only when the engine could not be reached.
func (c *apiClient) do(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, *c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+*c.addr+path, r)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch {
	case *c.token != "":
		req.Header.Set("Authorization", "Bearer "+*c.token)
	case *c.user != "":
		name, pass, _ := strings.Cut(*c.user, ":")
		req.SetBasicAuth(name, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%v (is the engine running with its HTTP API on %s?)", err, *c.addr)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, out, err
}

// apiProblem is an API error body: a message and, for a refused deploy, its problems.
type apiProblem struct {
	Error  string                `json:"error"`
	Errors []engine.FieldProblem `json:"errors"`
}

func failed(stderr io.Writer, what string, code int, body []byte) int {
	var p apiProblem
	if json.Unmarshal(body, &p) == nil && p.Error != "" {
		fmt.Fprintf(stderr, "%s: %s: %s\n", what, http.StatusText(code), p.Error)
	} else {
		fmt.Fprintf(stderr, "%s: %s: %s\n", what, http.StatusText(code), bytes.TrimSpace(body))
	}
	return 1
}

const functionsUsage = `usage: deviceless functions COMMAND [flags]

  deploy FILE.yaml | --name NAME (--runtime R --code-file F | --runtime wasm --module M | --image I --command C)
                        deploy a new version of a function (docs/functions.md)
  list                  the rule files' functions (read-only) and the deployed ones
  show NAME[@VERSION]   one function with its spec
  versions NAME         its versions
  rm NAME               delete a deployed function with every version

Every command takes --http ADDR and --token T (or $DEVICELESS_TOKEN) or --user U:P
(or $DEVICELESS_USER). Deploying needs the developer role (names NAMESPACE.*) or admin.
`

func functionsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, functionsUsage)
		return 2
	}
	switch args[0] {
	case "deploy":
		return functionsDeploy(ctx, args[1:], stdout, stderr)
	case "list", "ls":
		return functionsList(ctx, args[1:], stdout, stderr)
	case "show":
		return functionsShow(ctx, args[1:], stdout, stderr, false)
	case "versions":
		return functionsShow(ctx, args[1:], stdout, stderr, true)
	case "rm", "delete":
		return functionsRm(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, functionsUsage)
		return 0
	}
	fmt.Fprintf(stderr, "deviceless functions: unknown command %q\n\n%s", args[0], functionsUsage)
	return 2
}

// parseNamed parses fs's flags and returns the one positional argument (a name or a
// file), which may come before the flags or after them ("" without one); ok is false when
// the flags do not parse (fs has said why).
func parseNamed(fs *flag.FlagSet, args []string) (name string, ok bool) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return "", false
	}
	if name == "" && fs.NArg() > 0 {
		name = fs.Arg(0)
	}
	return name, true
}

// deployFile is a deploy file: the API's body plus the function's name and, instead of
// inline code, a file to read it from (relative to the deploy file).
type deployFile struct {
	Name                  string `yaml:"name"`
	CodeFile              string `yaml:"code_file"`
	engine.FunctionDeploy `yaml:",inline"`
}

type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

func functionsDeploy(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("functions deploy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := apiFlags(fs)
	name := fs.String("name", "", "function name (NAMESPACE.NAME for a developer); overrides the file's")
	runtime := fs.String("runtime", "", "runtime, e.g. python3 or sh (with --code-file)")
	codeFile := fs.String("code-file", "", "file with the function's code")
	module := fs.String("module", "", "WebAssembly module file (with --runtime wasm)")
	image := fs.String("image", "", "container image (with --command) instead of a runtime")
	command := fs.String("command", "", "command, split at spaces")
	timeout := fs.String("timeout", "", "run deadline, e.g. 5s")
	memory := fs.String("memory", "", "memory limit, e.g. 64Mi")
	description := fs.String("description", "", "what the function does")
	target := fs.String("target", "", `default target as JSON, e.g. {"labels":{"zone":"north"}}`)
	warmIdle := fs.String("warm-idle", "", "keep a warm runner for this long without use, e.g. 1m")
	var env, invokers stringsFlag
	fs.Var(&env, "env", "KEY=VALUE for the function's environment (repeatable)")
	fs.Var(&invokers, "invoker", "a user or token (besides the namespace's developer) who may invoke it (repeatable; * for everybody)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: deviceless functions deploy [FILE.yaml] [--name NAME] [--runtime R --code-file F | --runtime wasm --module M | --image I --command C] [flags]\n\n"+
			"Deploys a new version of a function. A file holds what the API takes (runtime, code or code_file,\n"+
			"module (a .wasm file relative to it), image, command, timeout, memory, env, warm, description,\n"+
			"target, invokers) and its name; flags\n"+
			"override it. Prints the version (NAME@N); an unchanged function keeps its version.\n\n")
		fs.PrintDefaults()
	}
	file, ok := parseNamed(fs, args)
	if !ok {
		return 2
	}
	var d deployFile
	var src []byte
	if file != "" {
		var err error
		if src, err = os.ReadFile(file); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		if err := yaml.UnmarshalWithOptions(src, &d, yaml.Strict()); err != nil {
			fmt.Fprintf(stderr, "%s:%s\n", file, yaml.FormatError(err, false, true))
			return 1
		}
		if d.CodeFile != "" {
			p := d.CodeFile
			if !filepath.IsAbs(p) {
				p = filepath.Join(filepath.Dir(file), p)
			}
			code, err := os.ReadFile(p)
			if err != nil {
				fmt.Fprintf(stderr, "%s: code_file: %v\n", file, err)
				return 1
			}
			d.Code = string(code)
		}
		if d.Module != "" && !protocol.IsModuleDigest(d.Module) && !filepath.IsAbs(d.Module) {
			d.Module = filepath.Join(filepath.Dir(file), d.Module)
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["name"] {
		d.Name = *name
	}
	if set["runtime"] {
		d.Runtime = *runtime
	}
	if set["image"] {
		d.Image = *image
	}
	if set["command"] {
		d.Command = strings.Fields(*command)
	}
	if set["code-file"] {
		code, err := os.ReadFile(*codeFile)
		if err != nil {
			fmt.Fprintln(stderr, "--code-file:", err)
			return 1
		}
		d.Code = string(code)
	}
	if set["module"] {
		d.Module = *module
	}
	if d.Module != "" && !protocol.IsModuleDigest(d.Module) {
		// The module travels with the deploy; the function names it by digest.
		b, err := readModule(d.Module)
		if err != nil {
			fmt.Fprintln(stderr, "module:", err)
			return 1
		}
		d.ModuleWasm, d.Module = b, protocol.ModuleDigest(b)
	}
	if set["description"] {
		d.Description = *description
	}
	for flagName, apply := range map[string]func() error{
		"timeout": func() error { return d.Timeout.UnmarshalText([]byte(*timeout)) },
		"memory":  func() error { return d.Memory.UnmarshalText([]byte(*memory)) },
		"warm-idle": func() error {
			w := &protocol.Warm{}
			if d.Warm != nil {
				*w = *d.Warm
			}
			d.Warm = w
			return w.Idle.UnmarshalText([]byte(*warmIdle))
		},
		"target": func() error {
			d.Target = &protocol.Target{}
			return json.Unmarshal([]byte(*target), d.Target)
		},
	} {
		if set[flagName] {
			if err := apply(); err != nil {
				fmt.Fprintf(stderr, "--%s: %v\n", flagName, err)
				return 2
			}
		}
	}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			fmt.Fprintf(stderr, "--env %q: expected KEY=VALUE\n", kv)
			return 2
		}
		if d.Env == nil {
			d.Env = map[string]string{}
		}
		d.Env[k] = v
	}
	if len(invokers) > 0 {
		d.Invokers = invokers
	}
	if d.Name == "" {
		fmt.Fprintln(stderr, "functions deploy: needs a name (--name, or name: in the file)")
		return 2
	}
	code, body, err := api.do(ctx, http.MethodPut, "/api/v1/functions/"+url.PathEscape(d.Name), d.FunctionDeploy)
	if err != nil {
		fmt.Fprintf(stderr, "deploy %s: %v\n", d.Name, err)
		return 1
	}
	if code != http.StatusOK && code != http.StatusCreated {
		var p apiProblem
		if json.Unmarshal(body, &p) != nil || len(p.Errors) == 0 {
			return failed(stderr, "deploy "+d.Name, code, body)
		}
		fmt.Fprintf(stderr, "deploy %s: %s\n", d.Name, http.StatusText(code))
		for _, pr := range p.Errors {
			fmt.Fprintln(stderr, locate(file, src, pr))
		}
		return 1
	}
	var res engine.DeployResult
	if err := json.Unmarshal(body, &res); err != nil {
		fmt.Fprintf(stderr, "deploy %s: %v\n", d.Name, err)
		return 1
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	if res.Created {
		fmt.Fprintf(stdout, "deployed %s (%s)\n", res.Ref, res.Digest)
	} else {
		fmt.Fprintf(stdout, "unchanged: %s (%s)\n", res.Ref, res.Digest)
	}
	return 0
}

// locate words a problem the API found, at its place in the deploy file when there is one
// (file:line:col: field: message), else naming its field or flag.
func locate(file string, src []byte, p engine.FieldProblem) string {
	msg := p.Error
	if p.Field != "" {
		msg = p.Field + ": " + msg
	}
	if file == "" {
		return "  " + msg
	}
	if p.Field != "" {
		if f, err := parser.ParseBytes(src, 0); err == nil {
			for field := p.Field; field != ""; {
				if path, err := yaml.PathString("$." + field); err == nil {
					if n, err := path.FilterFile(f); err == nil && n != nil {
						pos := n.GetToken().Position
						return fmt.Sprintf("%s:%d:%d: %s", file, pos.Line, pos.Column, msg)
					}
				}
				// A field the file does not have (a default, a flag): its parent's place.
				i := strings.LastIndexAny(field, ".[")
				if i < 0 {
					break
				}
				field = field[:i]
			}
		}
	}
	return file + ": " + msg
}

func functionsList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("functions list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := apiFlags(fs)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	code, body, err := api.do(ctx, http.MethodGet, "/api/v1/functions", nil)
	if err != nil {
		fmt.Fprintln(stderr, "functions list:", err)
		return 1
	}
	if code != http.StatusOK {
		return failed(stderr, "functions list", code, body)
	}
	if *asJSON {
		stdout.Write(body)
		return 0
	}
	var v struct{ Functions []engine.FunctionView }
	if err := json.Unmarshal(body, &v); err != nil {
		fmt.Fprintln(stderr, "functions list:", err)
		return 1
	}
	w := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tVERSION\tSOURCE\tRUNS\tMEMORY\tTIMEOUT\tDESCRIPTION")
	for _, f := range v.Functions {
		version, source := "-", "api"
		if f.Version > 0 {
			version = fmt.Sprint(f.Version)
		}
		if f.ReadOnly {
			source = "rules (read-only)"
		}
		if f.ShadowedBy != "" {
			source = "api (shadowed by " + f.ShadowedBy + ")"
		}
		runs := f.Spec.Runtime
		if runs == "" {
			runs = f.Spec.Image
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Name, version, source, runs, f.Spec.Memory, f.Spec.Timeout.D(), f.Spec.Description)
	}
	w.Flush()
	return 0
}

func functionsShow(ctx context.Context, args []string, stdout, stderr io.Writer, versions bool) int {
	what := "show"
	if versions {
		what = "versions"
	}
	fs := flag.NewFlagSet("functions "+what, flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := apiFlags(fs)
	name, ok := parseNamed(fs, args)
	if !ok {
		return 2
	}
	if name == "" {
		fmt.Fprintf(stderr, "usage: deviceless functions %s NAME[@VERSION] [--http ADDR] [--token T | --user U:P]\n", what)
		return 2
	}
	code, body, err := api.do(ctx, http.MethodGet, "/api/v1/functions/"+url.PathEscape(name), nil)
	if err != nil {
		fmt.Fprintf(stderr, "functions %s %s: %v\n", what, name, err)
		return 1
	}
	if code != http.StatusOK {
		return failed(stderr, "functions "+what+" "+name, code, body)
	}
	if !versions {
		stdout.Write(body)
		return 0
	}
	var d engine.FunctionDetail
	if err := json.Unmarshal(body, &d); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if d.ReadOnly {
		fmt.Fprintf(stdout, "%s is a rule file's function (%s): no versions\n", d.Name, d.Position)
		return 0
	}
	w := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(w, "VERSION\tDEPLOYED\tBY\tDIGEST\tDESCRIPTION")
	for _, v := range d.Versions {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", v.Ref, v.DeployedAt.Local().Format(time.DateTime), v.DeployedBy, shortDigest(v.Digest), v.Description)
	}
	w.Flush()
	return 0
}

func shortDigest(d string) string {
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12]
	}
	return d
}

func functionsRm(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("functions rm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := apiFlags(fs)
	name, ok := parseNamed(fs, args)
	if !ok {
		return 2
	}
	if name == "" {
		fmt.Fprintln(stderr, "usage: deviceless functions rm NAME [--http ADDR] [--token T | --user U:P]")
		return 2
	}
	code, body, err := api.do(ctx, http.MethodDelete, "/api/v1/functions/"+url.PathEscape(name), nil)
	if err != nil {
		fmt.Fprintf(stderr, "functions rm %s: %v\n", name, err)
		return 1
	}
	if code != http.StatusOK {
		return failed(stderr, "functions rm "+name, code, body)
	}
	fmt.Fprintf(stdout, "deleted %s\n", name)
	return 0
}

func logsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := apiFlags(fs)
	limit := fs.Int("limit", 20, "at most this many invocations, newest first")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: deviceless logs FUNCTION [--limit N] [--http ADDR] [--token T | --user U:P]\n\n"+
			"Prints a function's last invocations (every version), newest first, with the agent's error\n"+
			"and the tail of the function's stderr when one failed.\n\n")
		fs.PrintDefaults()
	}
	name, ok := parseNamed(fs, args)
	if !ok {
		return 2
	}
	if name == "" {
		fs.Usage()
		return 2
	}
	code, body, err := api.do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/functions/%s/logs?limit=%d", url.PathEscape(name), *limit), nil)
	if err != nil {
		fmt.Fprintf(stderr, "logs %s: %v\n", name, err)
		return 1
	}
	if code != http.StatusOK {
		return failed(stderr, "logs "+name, code, body)
	}
	if *asJSON {
		stdout.Write(body)
		return 0
	}
	var v struct{ Invocations []engine.LogEntry }
	if err := json.Unmarshal(body, &v); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	for _, e := range v.Invocations {
		cold := ""
		if e.Cold {
			cold = " cold"
		}
		fmt.Fprintf(stdout, "%s %s %s on %s by %s: %s exit=%d run=%.1fms%s\n", e.At.Local().Format(time.DateTime+".000"),
			e.ID, e.Function, orDash(e.Agent), e.Caller, e.Status, e.ExitCode, e.RunMS, cold)
		if e.Error != "" {
			for _, l := range strings.Split(strings.TrimRight(e.Error, "\n"), "\n") {
				fmt.Fprintln(stdout, "    "+l)
			}
		}
	}
	return 0
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func usageCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("usage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := apiFlags(fs)
	from := fs.String("from", "", "from this time (RFC 3339) or this long ago (24h); default: all")
	to := fs.String("to", "", "up to this time or this long ago; default: now")
	by := fs.String("by", "function", "group by function, version, agent, rule, caller (user), comma-separated")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: deviceless usage [--from T] [--to T] [--by function|version|agent|rule|user] [--http ADDR] [--token T | --user U:P]\n\n"+
			"Prints metered usage: invocations by status, run time (whole ms, rounded up), GB-ms (memory\n"+
			"limit × run time) and cold starts.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	q := url.Values{"by": {*by}}
	if *from != "" {
		q.Set("from", *from)
	}
	if *to != "" {
		q.Set("to", *to)
	}
	code, body, err := api.do(ctx, http.MethodGet, "/api/v1/usage?"+q.Encode(), nil)
	if err != nil {
		fmt.Fprintln(stderr, "usage:", err)
		return 1
	}
	if code != http.StatusOK {
		return failed(stderr, "usage", code, body)
	}
	if *asJSON {
		stdout.Write(body)
		return 0
	}
	var rep engine.UsageReport
	if err := json.Unmarshal(body, &rep); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	w := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', tabwriter.AlignRight)
	var head []string
	for _, d := range rep.By {
		head = append(head, strings.ToUpper(d))
	}
	fmt.Fprintln(w, strings.Join(append(head, "INVOCATIONS", "OK", "FAILED", "RUN MS", "GB-MS", "COLD", ""), "\t"))
	row := func(cells []string, r engine.UsageRow) {
		ok := r.ByStatus[protocol.StatusOK]
		fmt.Fprintln(w, strings.Join(append(cells, fmt.Sprint(r.Invocations), fmt.Sprint(ok), fmt.Sprint(r.Invocations-ok),
			fmt.Sprint(r.RunMS), fmt.Sprintf("%.3f", r.GBMS), fmt.Sprint(r.ColdStarts), ""), "\t"))
	}
	for _, r := range rep.Usage {
		var cells []string
		for _, d := range rep.By {
			switch d {
			case "function":
				cells = append(cells, orDash(r.Function))
			case "version":
				if r.Version > 0 {
					cells = append(cells, fmt.Sprintf("%s@%d", r.Function, r.Version))
				} else {
					cells = append(cells, r.Function)
				}
			case "agent":
				cells = append(cells, orDash(r.Agent))
			case "rule":
				cells = append(cells, orDash(r.Rule))
			case "caller":
				cells = append(cells, orDash(r.Caller))
			}
		}
		row(cells, r)
	}
	total := make([]string, len(rep.By))
	if len(total) > 0 {
		total[0] = "TOTAL"
	}
	row(total, rep.Total)
	w.Flush()
	return 0
}

// readModule reads a WebAssembly module file and checks its header and size.
func readModule(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > protocol.MaxModuleSize {
		return nil, fmt.Errorf("%s: %d bytes is larger than %d", path, st.Size(), protocol.MaxModuleSize)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if err := protocol.CheckModule(b); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}
