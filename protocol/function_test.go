package protocol

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]Size{"32Mi": 32 << 20, "512Ki": 512 << 10, "1Gi": 1 << 30, "64M": 64e6, "100": 100, "10k": 10e3, "64MiB": 64 << 20, "2KB": 2000, "1G": 1e9, "5 Mi": 5 << 20} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "Mi", "-1", "-1Mi", "1.5Gi", "12X", "99999999999999Gi"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
}

func TestSizeJSON(t *testing.T) {
	var s struct{ M Size }
	for in, want := range map[string]Size{`{"M":1048576}`: 1 << 20, `{"M":"64Mi"}`: 64 << 20} {
		if err := json.Unmarshal([]byte(in), &s); err != nil || s.M != want {
			t.Errorf("%s: got %d, %v; want %d", in, s.M, err, want)
		}
	}
	for _, in := range []string{`{"M":-1}`, `{"M":"x"}`, `{"M":true}`} {
		if err := json.Unmarshal([]byte(in), &s); err == nil {
			t.Errorf("%s accepted", in)
		}
	}
	if b, _ := json.Marshal(struct{ M Size }{64 << 20}); string(b) != `{"M":67108864}` {
		t.Errorf("size travels as %s, want a number", b)
	}
}

func TestFunctionSpecValidate(t *testing.T) {
	for _, c := range []struct {
		spec FunctionSpec
		want []string // substrings, one per joined error; none: valid
	}{
		{FunctionSpec{Runtime: "sh", Code: "echo"}, nil},
		{FunctionSpec{Image: "busybox", Command: Command{"true"}}, nil},
		{FunctionSpec{}, []string{"needs `runtime`"}},
		{FunctionSpec{Runtime: "sh", Image: "x", Code: "c"}, []string{"both `runtime` and `image`"}},
		{FunctionSpec{Runtime: "sh"}, []string{"needs `code`"}},
		{FunctionSpec{Image: "x", Code: "c"}, []string{"needs a `runtime`"}},
		{FunctionSpec{Runtime: "a/b", Code: "c"}, []string{"without '/'"}},
		{FunctionSpec{Image: "x", Timeout: -1, Memory: 1 << 20, Warm: &Warm{Idle: -1, MaxUses: -1}},
			[]string{"timeout", "below the 4Mi", "warm.idle", "warm.max_uses"}},
		{FunctionSpec{Image: "x", Memory: -5}, []string{"memory -5"}},
		{FunctionSpec{Runtime: RuntimeWasm, Module: "fn.wasm", Memory: 1 << 20}, nil},
		{FunctionSpec{Runtime: RuntimeWasm, Module: "sha256:00", Command: Command{"-v"}}, nil},
		{FunctionSpec{Runtime: RuntimeWasm}, []string{"needs `module`"}},
		{FunctionSpec{Runtime: RuntimeWasm, Module: "m.wasm", Code: "x"}, []string{"no inline `code`"}},
		{FunctionSpec{Runtime: "sh", Code: "x", Module: "m.wasm"}, []string{"needs `runtime: wasm`"}},
		{FunctionSpec{Runtime: RuntimeWasm, Module: "m.wasm", Memory: 1000}, []string{"below one WebAssembly page"}},
	} {
		err := c.spec.Validate()
		var got []string
		if err != nil {
			got = strings.Split(err.Error(), "\n")
		}
		if len(got) != len(c.want) {
			t.Errorf("%+v: errors %q, want %d", c.spec, got, len(c.want))
			continue
		}
		for i := range got {
			if !strings.Contains(got[i], c.want[i]) {
				t.Errorf("%+v: error %d = %q, want it to contain %q", c.spec, i, got[i], c.want[i])
			}
		}
	}
}

func TestFunctionSpecDefaults(t *testing.T) {
	got := FunctionSpec{Runtime: "sh", Code: "c", Warm: &Warm{MaxUses: 3}}.WithDefaults()
	want := FunctionSpec{Runtime: "sh", Code: "c", Timeout: Duration(DefaultTimeout), Memory: DefaultMemory,
		Warm: &Warm{Idle: Duration(DefaultWarmIdle), MaxUses: 3}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("WithDefaults (-want +got):\n%s", diff)
	}
	set := FunctionSpec{Image: "x", Timeout: Duration(time.Second), Memory: 8 << 20}
	if diff := cmp.Diff(set, set.WithDefaults()); diff != "" {
		t.Errorf("WithDefaults changed set values:\n%s", diff)
	}
}

func TestTargetNormalize(t *testing.T) {
	if got, err := (Target{}).Normalize(); err != nil || got.Pick != PickOne {
		t.Errorf("zero target: %+v, %v", got, err)
	}
	_, err := Target{Agent: "a", Labels: map[string]string{"x": "y"}, Pick: "some"}.Normalize()
	if err == nil || !strings.Contains(err.Error(), `pick "some"`) || !strings.Contains(err.Error(), "not both") {
		t.Errorf("bad target: %v", err)
	}
}

func TestSpecJSONRoundTrip(t *testing.T) {
	in := FunctionSpec{Runtime: "python3", Code: "print(1)", Timeout: Duration(2 * time.Second), Memory: 32 << 20,
		Env: map[string]string{"A": "b"}, Warm: &Warm{Idle: Duration(time.Minute), MaxUses: 5}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out FunctionSpec
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Errorf("round trip (-in +out):\n%s", diff)
	}
}

func TestValidateNamesFields(t *testing.T) {
	err := FunctionSpec{Image: "x", Code: "c", Runtime: "a b", Timeout: -1, Memory: 1, Warm: &Warm{Idle: -1, MaxUses: -1}}.Validate()
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%v is no *FieldError", e)
		}
		fields = append(fields, fe.Field)
	}
	want := []string{"image", "runtime", "timeout", "memory", "warm.idle", "warm.max_uses"}
	if diff := cmp.Diff(want, fields); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
}

func TestAdmitsTenant(t *testing.T) {
	for _, c := range []struct {
		labels map[string]string
		tenant string
		want   bool
	}{
		{nil, "", true},
		{nil, "alice", false},
		{map[string]string{"tenants": "alice"}, "alice", true},
		{map[string]string{"tenants": "bob, alice"}, "alice", true},
		{map[string]string{"tenants": "bob,alicia"}, "alice", false},
		{map[string]string{"tenants": "*"}, "alice", true},
		{map[string]string{"tenant": "alice"}, "alice", false},
	} {
		if got := AdmitsTenant(c.labels, c.tenant); got != c.want {
			t.Errorf("AdmitsTenant(%v, %q) = %v", c.labels, c.tenant, got)
		}
	}
	if s := (Target{Labels: map[string]string{"zone": "n"}, Tenant: "alice"}).String(); !strings.Contains(s, "tenants: alice") {
		t.Errorf("String() = %s: says nothing of the tenant", s)
	}
	if b, _ := json.Marshal(Target{Agent: "a", Tenant: "alice"}); string(b) != `{"agent":"a"}` {
		t.Errorf("the tenant travels: %s", b)
	}
}

func TestModuleHelpers(t *testing.T) {
	mod := []byte("\x00asm\x01\x00\x00\x00")
	d := ModuleDigest(mod)
	if !IsModuleDigest(d) || IsModuleDigest(strings.ToUpper(d)) || IsModuleDigest(d[:len(d)-1]) || IsModuleDigest("fn.wasm") {
		t.Errorf("IsModuleDigest wrong around %s", d)
	}
	if err := CheckModule(mod); err != nil {
		t.Error(err)
	}
	for _, bad := range [][]byte{nil, []byte("(module)"), []byte("\x00asm\x02\x00\x00\x00"), make([]byte, MaxModuleSize+1)} {
		if CheckModule(bad) == nil {
			t.Errorf("CheckModule accepted %.12q", bad)
		}
	}
	if i, n, err := ParseChunk("3/5"); err != nil || i != 3 || n != 5 {
		t.Errorf("ParseChunk(3/5) = %d, %d, %v", i, n, err)
	}
	for _, bad := range []string{"", "5/5", "-1/3", "0/0", "1", "a/b", "0/1000000"} {
		if _, _, err := ParseChunk(bad); err == nil {
			t.Errorf("ParseChunk(%q) accepted", bad)
		}
	}
	yes, no := true, false
	for _, c := range []struct {
		st      Status
		runtime string
		want    bool
	}{
		{Status{Runtimes: []string{"wasm"}, Containers: &no}, RuntimeWasm, true},
		{Status{Runtimes: []string{"python3", "sh"}, Containers: &yes}, RuntimeWasm, false},
		{Status{Runtimes: []string{"wasm"}, Containers: &no}, "sh", false},
		{Status{Runtimes: []string{"wasm"}, Containers: &no}, RuntimeImage, false},
		{Status{Runtimes: []string{"wasm"}, Containers: &yes}, RuntimeImage, true}, // podman without named runtimes
		{Status{Runtimes: []string{"sh"}}, RuntimeImage, true},                     // older agents say nothing and have podman
		{Status{}, RuntimeWasm, false},
		{Status{Containers: &no}, "", true},
	} {
		if got := c.st.Runs(c.runtime); got != c.want {
			t.Errorf("%+v.Runs(%q) = %v", c.st, c.runtime, got)
		}
	}
}
