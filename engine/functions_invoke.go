package engine

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/deviceless/deviceless/broker"
	"github.com/deviceless/deviceless/protocol"
	"github.com/deviceless/deviceless/rules"
)

// ErrForbidden is returned for what the caller's role or namespace does not allow.
var ErrForbidden = errors.New("forbidden")

// resolvedFunction is what a function reference names at one moment: a rule file's
// function, or one version of a deployed function.
type resolvedFunction struct {
	fn      *rules.Function  // what is dispatched; a deployed version's Name is name@N
	name    string           // the name without a version
	version *functionVersion // nil for a rule file's function
	tenant  string           // a deployed function's namespace
}

// resolveFunction finds what ref (name or name@version) names. A rule file's functions
// come first and have no versions; deployed functions are looked up in the registry.
func (e *Engine) resolveFunction(ref string) (resolvedFunction, error) {
	name, n, err := splitRef(ref)
	if err != nil {
		return resolvedFunction{}, err
	}
	if fn := e.ruleSet().Functions[name]; fn != nil {
		if n != 0 {
			return resolvedFunction{}, fmt.Errorf("%w %q: %s is a rule file's function, which has no versions", ErrUnknownFunction, ref, name)
		}
		return resolvedFunction{fn: fn, name: name}, nil
	}
	v, err := e.functions.version(ref)
	if err != nil {
		return resolvedFunction{}, err
	}
	return resolvedFunction{fn: v.fn, name: name, version: v, tenant: namespaceOf(name)}, nil
}

func (r resolvedFunction) defaultTarget() *protocol.Target {
	if r.version == nil {
		return nil
	}
	return r.version.Def.Target
}

// mayInvoke: admins and rules everything; clients and developers the functions outside a
// namespace, their own namespace's, and those whose invokers name them.
func (r resolvedFunction) mayInvoke(c caller) bool {
	switch {
	case c.role == broker.RoleAdmin:
		return true
	case c.role != broker.RoleClient && c.role != broker.RoleDeveloper:
		return false
	case r.tenant == "" || c.namespace() == r.tenant:
		return true
	}
	return slices.ContainsFunc(r.version.Def.Invokers, c.is)
}

// mayManage reports whether c may deploy and delete the function name: an admin any, a
// developer those of its namespace.
func mayManage(c caller, name string) bool {
	if c.role == broker.RoleAdmin {
		return true
	}
	ns := c.namespace()
	return ns != "" && namespaceOf(name) == ns
}

// mergeTarget is an invocation's target: the request's (or rule's) when it names an agent
// or labels, else the function's default with the request's pick.
func mergeTarget(req, def *protocol.Target) protocol.Target {
	var t protocol.Target
	switch {
	case req != nil && (req.Agent != "" || len(req.Labels) > 0):
		t = *req
	case def != nil:
		t = *def
		if req != nil && req.Pick != "" {
			t.Pick = req.Pick
		}
	case req != nil:
		t = *req
	}
	return t
}

// checkAdmits refuses a target naming an agent known not to run the tenant's functions.
// (Agents selected by labels are filtered when dispatched: registry.selectAgents.)
func (e *Engine) checkAdmits(t protocol.Target) error {
	if t.Agent == "" || t.Tenant == "" {
		return nil
	}
	for _, a := range e.registry.list() {
		if a.Agent == t.Agent && !protocol.AdmitsTenant(a.Labels, t.Tenant) {
			return fmt.Errorf("%w: agent %s does not run functions of namespace %s (its label %s does not list %s)",
				ErrForbidden, t.Agent, t.Tenant, protocol.TenantsLabel, t.Tenant)
		}
	}
	return nil
}

// prepareInvoke resolves an external invocation (HTTP, MQTT, Engine.Invoke) and checks
// that c may make it; it returns the function and the target to dispatch to.
func (e *Engine) prepareInvoke(c caller, ref string, req *protocol.Target) (resolvedFunction, protocol.Target, error) {
	r, err := e.resolveFunction(ref)
	if err != nil {
		return r, protocol.Target{}, err
	}
	if !r.mayInvoke(c) {
		return r, protocol.Target{}, fmt.Errorf("%w: %s may not invoke %s (namespace %s: its developer, admins and the function's invokers may)",
			ErrForbidden, c, ref, r.tenant)
	}
	t, err := mergeTarget(req, r.defaultTarget()).Normalize()
	if err != nil {
		return r, t, err
	}
	t.Tenant = r.tenant
	return r, t, e.checkAdmits(t)
}

// invokeRule carries out a rule's invoke action. A deployed function is resolved now, so
// that `invoke: name` runs its latest version; one that cannot be (deleted since the rules
// were loaded) is dead-lettered.
func (e *Engine) invokeRule(rule string, a *rules.Action, ev *protocol.Event, hop int, ids *actionIDs) {
	fn, t, by := a.Function, a.Target, ruleCaller(rule).String()
	if fn.Deployed {
		r, err := e.resolveFunction(fn.Name)
		if err != nil {
			e.dispatch.deadLetter(&pending{inv: protocol.Invocation{ID: ids.next(), Function: fn.Name, Rule: rule, Hop: hop, Event: ev, Args: a.Args},
				target: t, caller: by}, err.Error(), protocol.StatusError)
			return
		}
		req := &t
		if t.Agent == "" && len(t.Labels) == 0 {
			req = nil // the function's default target, with its pick
		}
		if t, err = mergeTarget(req, r.defaultTarget()).Normalize(); err != nil {
			t = a.Target
		}
		t.Tenant = r.tenant
		fn = r.fn
	}
	e.dispatch.invoke(fn, rule, t, a.Args, ev, hop, nil, false, ids, by)
}

// apiError is a refused API request: its status and its problems, each naming its field.
type apiError struct {
	status   int
	problems []*protocol.FieldError
}

func (e *apiError) Error() string {
	parts := make([]string, len(e.problems))
	for i, p := range e.problems {
		if p.Field == "" {
			parts[i] = p.Err.Error()
		} else {
			parts[i] = p.Field + ": " + p.Err.Error()
		}
	}
	return strings.Join(parts, "; ")
}

func refuse(status int, field, format string, args ...any) *apiError {
	return &apiError{status: status, problems: []*protocol.FieldError{{Field: field, Err: fmt.Errorf(format, args...)}}}
}

// deployFunction checks def for c and stores it as the next version of name. created is
// false when def equals the latest version (nothing changed). Warnings are what may keep
// the function from running (no agent has its runtime now, ...), not errors.
func (e *Engine) deployFunction(c caller, name string, def FunctionDeploy) (v *functionVersion, created bool, warnings []string, err error) {
	if strings.Contains(name, "@") {
		return nil, false, nil, refuse(http.StatusBadRequest, "name", "%q: versions are immutable; deploy to the name alone and the engine numbers the version", name)
	}
	if err := validFunctionName(name); err != nil {
		return nil, false, nil, refuse(http.StatusBadRequest, "name", "%v", err)
	}
	if !mayManage(c, name) {
		if ns := c.namespace(); ns != "" {
			return nil, false, nil, refuse(http.StatusForbidden, "name", "%s deploys only under its namespace: %s.<name>, not %s", c, ns, name)
		}
		return nil, false, nil, refuse(http.StatusForbidden, "name", "%s (role %s) may not deploy functions: that needs the developer or admin role", c, c.role)
	}
	if fn := e.ruleSet().Functions[name]; fn != nil {
		return nil, false, nil, refuse(http.StatusConflict, "name", "%s is defined in a rule file (%s): rule files' functions are read-only through the API", name, fn.Pos)
	}
	bad := &apiError{status: http.StatusBadRequest}
	var module []byte // a wasm function's module sent with the deploy, stored once def is valid
	switch {
	case len(def.ModuleWasm) > 0 && def.Runtime != protocol.RuntimeWasm:
		bad.problems = append(bad.problems, &protocol.FieldError{Field: "module_wasm", Err: errors.New("a module needs `runtime: wasm`")})
	case len(def.ModuleWasm) > 0:
		module, def.ModuleWasm = def.ModuleWasm, nil
		d := protocol.ModuleDigest(module)
		if err := protocol.CheckModule(module); err != nil {
			bad.problems = append(bad.problems, &protocol.FieldError{Field: "module_wasm", Err: err})
		} else if def.Module != "" && protocol.IsModuleDigest(def.Module) && def.Module != d {
			bad.problems = append(bad.problems, &protocol.FieldError{Field: "module", Err: fmt.Errorf("%s is not the digest of module_wasm (%s)", def.Module, d)})
		}
		def.Module = d
	case def.Runtime == protocol.RuntimeWasm && def.Module != "" && !protocol.IsModuleDigest(def.Module):
		bad.problems = append(bad.problems, &protocol.FieldError{Field: "module", Err: fmt.Errorf("%q: a deploy names its module by digest (sha256:<hex>) or sends its bytes in module_wasm", def.Module)})
	case def.Runtime == protocol.RuntimeWasm && def.Module != "" && !e.functions.modules.has(def.Module):
		bad.problems = append(bad.problems, &protocol.FieldError{Field: "module", Err: fmt.Errorf("the engine has no module %s: send its bytes in module_wasm", def.Module)})
	}
	for _, p := range unjoinErr(def.Validate()) {
		var fe *protocol.FieldError
		if !errors.As(p, &fe) {
			fe = &protocol.FieldError{Err: p}
		}
		bad.problems = append(bad.problems, fe)
	}
	var t protocol.Target
	if def.Target != nil {
		if t, err = def.Target.Normalize(); err != nil {
			for _, p := range unjoinErr(err) {
				bad.problems = append(bad.problems, &protocol.FieldError{Field: "target", Err: p})
			}
		}
		def.Target = &t
	}
	for i, inv := range def.Invokers {
		if inv == "" || strings.ContainsAny(inv, " ,") {
			bad.problems = append(bad.problems, &protocol.FieldError{Field: fmt.Sprintf("invokers[%d]", i), Err: fmt.Errorf("%q: a user or token name, user:NAME, token:NAME or *", inv)})
		}
	}
	if len(bad.problems) > 0 {
		return nil, false, nil, bad
	}
	t.Tenant = namespaceOf(name)
	if err := e.checkAdmits(t); err != nil {
		return nil, false, nil, refuse(http.StatusForbidden, "target.agent", "%v", strings.TrimPrefix(err.Error(), ErrForbidden.Error()+": "))
	}
	warnings = e.deployWarnings(def, t)
	if module != nil {
		if _, err := e.functions.modules.put(module); err != nil {
			return nil, false, nil, &apiError{status: http.StatusInternalServerError, problems: []*protocol.FieldError{{Field: "module_wasm", Err: err}}}
		}
	}
	v, created, err = e.functions.deploy(name, def, c.String())
	if err != nil {
		return nil, false, nil, &apiError{status: http.StatusInternalServerError, problems: []*protocol.FieldError{{Err: err}}}
	}
	if created {
		e.log.Info("function deployed", "function", v.fn.Name, "by", c.String(), "digest", v.Digest)
		if st := e.rulesErr.Load(); st != nil && st.Error != "" {
			// The rule files may have waited for this function.
			e.Reload()
		}
	}
	return v, created, warnings, nil
}

// deployWarnings says what would keep def from running now.
func (e *Engine) deployWarnings(def FunctionDeploy, t protocol.Target) []string {
	var out []string
	t.Pick = protocol.PickAll
	ids := e.registry.selectAgents(t, "", nil)
	if len(ids) == 0 {
		out = append(out, "no online agent matches the target "+t.String()+" now")
	}
	if def.Runtime != "" && len(ids) > 0 {
		has := false
		for _, a := range e.registry.list() {
			if slices.Contains(ids, a.Agent) && slices.Contains(a.Runtimes, def.Runtime) && a.Status.Runs(def.Runtime) {
				has = true
			}
		}
		if !has {
			out = append(out, fmt.Sprintf("no online agent of the target has the runtime %q", def.Runtime))
		}
	}
	return out
}

// deleteFunction removes every version of name.
func (e *Engine) deleteFunction(c caller, ref string) error {
	name, n, err := splitRef(ref)
	if err != nil {
		return refuse(http.StatusBadRequest, "name", "%v", err)
	}
	if n != 0 {
		return refuse(http.StatusBadRequest, "name", "%s: versions are not deleted one by one; DELETE %s removes the function with every version", ref, name)
	}
	if fn := e.ruleSet().Functions[name]; fn != nil {
		return refuse(http.StatusConflict, "name", "%s is defined in a rule file (%s): rule files' functions are read-only through the API", name, fn.Pos)
	}
	if !mayManage(c, name) {
		return refuse(http.StatusForbidden, "name", "%s may not delete %s", c, name)
	}
	if _, err := e.functions.version(name); err != nil {
		return refuse(http.StatusNotFound, "name", "%v", err)
	}
	for _, r := range e.ruleSet().Rules {
		for _, fn := range r.Invokes() {
			if base, _, _ := splitRef(fn.Name); fn.Deployed && base == name {
				return refuse(http.StatusConflict, "name", "rule %s (%s) invokes %s: change the rule first", r.Name, r.Pos, fn.Name)
			}
		}
	}
	if err := e.functions.remove(name, c.String()); err != nil {
		return &apiError{status: http.StatusInternalServerError, problems: []*protocol.FieldError{{Err: err}}}
	}
	e.log.Info("function deleted", "function", name, "by", c.String())
	return nil
}

func unjoinErr(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err != nil {
		return []error{err}
	}
	return nil
}
