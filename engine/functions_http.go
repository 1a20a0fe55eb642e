package engine

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/deviceless/deviceless/broker"
	"github.com/deviceless/deviceless/protocol"
)

// functionRoutes registers the functions API (docs/functions.md) on mux.
func (e *Engine) functionRoutes(mux *http.ServeMux, g *guard) {
	mux.HandleFunc("GET /api/v1/functions", g.wrap(accessRead, e.apiFunctions))
	mux.HandleFunc("GET /api/v1/functions/{name}", g.wrap(accessRead, e.apiFunction))
	mux.HandleFunc("PUT /api/v1/functions/{name}", g.wrap(accessDeploy, e.apiDeploy))
	mux.HandleFunc("DELETE /api/v1/functions/{name}", g.wrap(accessDeploy, e.apiDeleteFunction))
	mux.HandleFunc("GET /api/v1/functions/{name}/logs", g.wrap(accessRead, e.apiFunctionLogs))
	mux.HandleFunc("GET /api/v1/usage", g.wrap(accessRead, e.apiUsage))
}

// FunctionView is a function as /api/v1/functions lists it.
type FunctionView struct {
	Name   string `json:"name"`
	Source string `json:"source"` // "rules" (a rule file's) or "api" (deployed)
	// ReadOnly: a rule file's function changes with its file, not through the API.
	ReadOnly  bool   `json:"read_only"`
	Position  string `json:"position,omitempty"` // a rule file's: file:line:col
	Namespace string `json:"namespace,omitempty"`
	Version   int    `json:"version,omitempty"` // the latest version
	Ref       string `json:"ref,omitempty"`     // name@version of the latest
	// Spec is the function with its defaults; code and env only for those who may
	// manage it (Redacted says when they are left out), and never in the list.
	Spec       protocol.FunctionSpec `json:"spec"`
	Redacted   bool                  `json:"redacted,omitempty"`
	Target     *protocol.Target      `json:"target,omitempty"`
	Invokers   []string              `json:"invokers,omitempty"`
	Digest     string                `json:"digest,omitempty"`
	DeployedAt *time.Time            `json:"deployed_at,omitempty"`
	DeployedBy string                `json:"deployed_by,omitempty"`
	// ShadowedBy is set when a rule file defines a function of the same name, which is
	// what the name then means.
	ShadowedBy string `json:"shadowed_by,omitempty"`
}

// VersionView is one version in GET /api/v1/functions/{name}.
type VersionView struct {
	Version     int       `json:"version"`
	Ref         string    `json:"ref"`
	Digest      string    `json:"digest"`
	DeployedAt  time.Time `json:"deployed_at"`
	DeployedBy  string    `json:"deployed_by"`
	Description string    `json:"description,omitempty"`
}

// FunctionDetail is GET /api/v1/functions/{name}: the version asked for (the latest for
// a bare name) and every version.
type FunctionDetail struct {
	FunctionView
	Versions []VersionView `json:"versions"`
}

func redact(s protocol.FunctionSpec) protocol.FunctionSpec {
	s.Code, s.Env = "", nil
	return s
}

func (e *Engine) deployedView(c caller, name string, v *functionVersion, full bool) FunctionView {
	at := v.At
	fv := FunctionView{Name: name, Source: "api", Namespace: namespaceOf(name), Version: v.Version, Ref: v.fn.Name,
		Spec: v.fn.Spec, Target: v.Def.Target, Invokers: v.Def.Invokers, Digest: v.Digest, DeployedAt: &at, DeployedBy: v.By}
	if !full || !mayManage(c, name) {
		fv.Spec, fv.Redacted = redact(fv.Spec), full
	}
	if fn := e.ruleSet().Functions[name]; fn != nil {
		fv.ShadowedBy = fn.Pos.String()
	}
	return fv
}

func (e *Engine) ruleFunctionView(c caller, name string, full bool) FunctionView {
	fn := e.ruleSet().Functions[name]
	fv := FunctionView{Name: name, Source: "rules", ReadOnly: true, Position: fn.Pos.String(), Spec: fn.Spec}
	if !full || c.role != broker.RoleAdmin {
		fv.Spec, fv.Redacted = redact(fv.Spec), full
	}
	return fv
}

func (e *Engine) apiFunctions(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	out := []FunctionView{}
	set := e.ruleSet()
	for name := range set.Functions {
		out = append(out, e.ruleFunctionView(c, name, false))
	}
	for _, d := range e.functions.deployedNames() {
		out = append(out, e.deployedView(c, d.name, d.latest(), false))
	}
	slices.SortFunc(out, func(a, b FunctionView) int {
		if n := strings.Compare(a.Name, b.Name); n != 0 {
			return n
		}
		return strings.Compare(a.Source, b.Source)
	})
	writeJSON(w, http.StatusOK, map[string]any{"functions": out})
}

func (e *Engine) apiFunction(w http.ResponseWriter, r *http.Request) {
	c, ref := callerOf(r), r.PathValue("name")
	name, n, err := splitRef(ref)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if e.ruleSet().Functions[name] != nil && n == 0 {
		writeJSON(w, http.StatusOK, FunctionDetail{FunctionView: e.ruleFunctionView(c, name, true), Versions: []VersionView{}})
		return
	}
	v, err := e.functions.version(ref)
	if err != nil {
		writeError(w, http.StatusNotFound, err)
		return
	}
	out := FunctionDetail{FunctionView: e.deployedView(c, name, v, true), Versions: []VersionView{}}
	for _, d := range e.functions.deployedNames() {
		if d.name != name {
			continue
		}
		for _, v := range d.versions {
			out.Versions = append(out.Versions, VersionView{Version: v.Version, Ref: v.fn.Name, Digest: v.Digest,
				DeployedAt: v.At, DeployedBy: v.By, Description: v.Def.Description})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// DeployResult is the answer to PUT /api/v1/functions/{name}.
type DeployResult struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	Ref     string `json:"ref"`
	// Created is false when the body equals the latest version: no new version.
	Created  bool     `json:"created"`
	Digest   string   `json:"digest"`
	Warnings []string `json:"warnings,omitempty"`
}

// FieldProblem is one problem of a refused request, naming its field (`timeout`,
// `warm.idle`, `target.agent`; "" for the body as a whole).
type FieldProblem struct {
	Field string `json:"field"`
	Error string `json:"error"`
}

func writeAPIError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	probs := make([]FieldProblem, len(ae.problems))
	for i, p := range ae.problems {
		probs[i] = FieldProblem{Field: p.Field, Error: p.Err.Error()}
	}
	writeJSON(w, ae.status, map[string]any{"error": ae.Error(), "errors": probs})
}

// maxDeployBody bounds a deploy's body: a wasm module of protocol.MaxModuleSize in base64,
// and the rest of the spec.
const maxDeployBody = protocol.MaxModuleSize/3*4 + 8 + maxRequestBody

func (e *Engine) apiDeploy(w http.ResponseWriter, r *http.Request) {
	c, name := callerOf(r), r.PathValue("name")
	body, err := io.ReadAll(io.LimitReader(r.Body, maxDeployBody+1))
	if err != nil || len(body) > maxDeployBody {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("request body larger than %d bytes", maxDeployBody))
		return
	}
	var def FunctionDeploy
	if probs := decodeStrictJSON(body, &def); len(probs) > 0 {
		writeAPIError(w, &apiError{status: http.StatusBadRequest, problems: probs})
		return
	}
	v, created, warnings, err := e.deployFunction(c, name, def)
	if err != nil {
		writeAPIError(w, err)
		return
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	writeJSON(w, code, DeployResult{Name: name, Version: v.Version, Ref: v.fn.Name, Created: created, Digest: v.Digest, Warnings: warnings})
}

func (e *Engine) apiDeleteFunction(w http.ResponseWriter, r *http.Request) {
	if err := e.deleteFunction(callerOf(r), r.PathValue("name")); err != nil {
		writeAPIError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"deleted": r.PathValue("name")})
}

// mayReadAll: admins and viewers read every function's usage and logs.
func mayReadAll(c caller) bool { return c.role == broker.RoleAdmin || c.role == RoleViewer }

func (e *Engine) apiFunctionLogs(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	name, _, err := splitRef(r.PathValue("name"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if !mayReadAll(c) && (e.ruleSet().Functions[name] != nil || !mayManage(c, name)) {
		writeError(w, http.StatusForbidden, fmt.Errorf("%s may not read the logs of %s: its developer, admins and viewers may", c, name))
		return
	}
	if _, err := e.resolveFunction(name); err != nil {
		writeError(w, http.StatusNotFound, err)
		return
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	writeJSON(w, http.StatusOK, map[string]any{"function": name, "invocations": e.functions.logs.list(name, limit)})
}

// UsageReport is GET /api/v1/usage.
type UsageReport struct {
	From  *time.Time `json:"from,omitempty"`
	To    time.Time  `json:"to"`
	By    []string   `json:"by"`
	Usage []UsageRow `json:"usage"`
	Total UsageRow   `json:"total"`
}

// parseWhen reads a usage bound: RFC 3339, or a duration meaning that long ago ("24h").
func parseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(strings.TrimPrefix(s, "-")); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q: expected an RFC 3339 time (2025-06-01T00:00:00Z) or a duration ago (24h)", s)
}

func (e *Engine) apiUsage(w http.ResponseWriter, r *http.Request) {
	c, q, now := callerOf(r), r.URL.Query(), e.now()
	rep := UsageReport{To: now}
	var from time.Time
	var err error
	if s := q.Get("from"); s != "" {
		if from, err = parseWhen(s, now); err != nil {
			writeAPIError(w, refuse(http.StatusBadRequest, "from", "%v", err))
			return
		}
		rep.From = &from
	}
	if s := q.Get("to"); s != "" {
		if rep.To, err = parseWhen(s, now); err != nil {
			writeAPIError(w, refuse(http.StatusBadRequest, "to", "%v", err))
			return
		}
	}
	by := q.Get("by")
	if by == "" {
		by = "function"
	}
	for d := range strings.SplitSeq(by, ",") {
		if d == "user" {
			d = "caller"
		}
		if !slices.Contains(usageDims, d) {
			writeAPIError(w, refuse(http.StatusBadRequest, "by", "%q: group by function, version, agent, rule or caller (user)", d))
			return
		}
		rep.By = append(rep.By, d)
	}
	if from.IsZero() {
		from = time.Unix(0, 0)
	}
	rep.Usage, rep.Total = e.functions.usage.query(from, rep.To, rep.By, e.usageFilter(c))
	writeJSON(w, http.StatusOK, rep)
}

// usageFilter is what usage c may read: all of it for admins and viewers; for clients
// and developers, that of the functions they may invoke now (and a developer's deleted
// ones).
func (e *Engine) usageFilter(c caller) func(string) bool {
	if mayReadAll(c) {
		return func(string) bool { return true }
	}
	seen := map[string]bool{}
	return func(name string) bool {
		ok, done := seen[name]
		if !done {
			rf, err := e.resolveFunction(name)
			ok = (err == nil && rf.mayInvoke(c)) || (c.namespace() != "" && namespaceOf(name) == c.namespace())
			seen[name] = ok
		}
		return ok
	}
}

// decodeStrictJSON decodes data into v field by field, reporting every problem with the
// path of its field: unknown fields at any depth, and values of the wrong type or form
// (`timeout: duration "5x": ...`). Embedded structs are flattened, as encoding/json does.
func decodeStrictJSON(data []byte, v any) []*protocol.FieldError {
	var probs []*protocol.FieldError
	if len(bytes.TrimSpace(data)) == 0 {
		return []*protocol.FieldError{{Err: errors.New("empty body: expected a JSON object")}}
	}
	if err := json.Unmarshal(data, new(any)); err != nil {
		return []*protocol.FieldError{{Err: jsonProblem(err)}}
	}
	decodeInto(data, reflect.ValueOf(v).Elem(), "", &probs)
	return probs
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func decodeInto(raw []byte, v reflect.Value, path string, probs *[]*protocol.FieldError) {
	add := func(p string, err error) { *probs = append(*probs, &protocol.FieldError{Field: p, Err: err}) }
	st := v.Type()
	if st.Kind() == reflect.Pointer {
		st = st.Elem()
	}
	pt := reflect.PointerTo(st)
	if st.Kind() != reflect.Struct || pt.Implements(jsonUnmarshaler) || pt.Implements(textUnmarshaler) {
		if err := json.Unmarshal(raw, v.Addr().Interface()); err != nil {
			add(path, jsonProblem(err))
		}
		return
	}
	if string(bytes.TrimSpace(raw)) == "null" {
		v.SetZero()
		return
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		add(path, errors.New("expected an object"))
		return
	}
	if v.Kind() == reflect.Pointer {
		v.Set(reflect.New(st))
		v = v.Elem()
	}
	fields, names := map[string]reflect.Value{}, []string{}
	collectFields(v, fields, &names)
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		p := k
		if path != "" {
			p = path + "." + k
		}
		f, ok := fields[k]
		if !ok {
			add(p, fmt.Errorf("unknown field (fields: %s)", strings.Join(names, ", ")))
			continue
		}
		decodeInto(obj[k], f, p, probs)
	}
}

// collectFields maps the JSON names of v's fields, flattening embedded structs.
func collectFields(v reflect.Value, fields map[string]reflect.Value, names *[]string) {
	for i := range v.NumField() {
		sf := v.Type().Field(i)
		tag, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		switch {
		case tag == "-" || !sf.IsExported():
		case sf.Anonymous && tag == "":
			collectFields(v.Field(i), fields, names)
		default:
			if tag == "" {
				tag = sf.Name
			}
			fields[tag] = v.Field(i)
			*names = append(*names, tag)
		}
	}
}

// jsonProblem words a decoding error without Go's type names where it can.
func jsonProblem(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		want := te.Type.Kind().String()
		switch te.Type.Kind() {
		case reflect.Map, reflect.Struct:
			want = "an object"
		case reflect.Slice, reflect.Array:
			want = "a list"
		case reflect.String:
			want = "a string"
		case reflect.Int, reflect.Int64, reflect.Int32:
			want = "an integer"
		}
		if te.Field != "" {
			return fmt.Errorf("%s: expected %s, got %s", te.Field, want, te.Value)
		}
		return fmt.Errorf("expected %s, got %s", want, te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("malformed JSON: %v", se)
	}
	return errors.New(strings.TrimPrefix(err.Error(), "json: "))
}
