package engine

import (
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/google/go-cmp/cmp"
)

// rulesAPI is /api/v1/rules as a client reads it: the JSON names are the contract.
type rulesAPI struct {
	LastReload *struct {
		Error string              `json:"error"`
		Diff  map[string][]string `json:"diff"`
	} `json:"last_reload"`
	Rules []struct {
		Name           string     `json:"name"`
		Matched        uint64     `json:"matched"`
		Errors         uint64     `json:"errors"`
		Keys           int        `json:"keys"`
		LastError      string     `json:"last_error"`
		LastErrorAt    *time.Time `json:"last_error_at"`
		LastErrorTopic string     `json:"last_error_topic"`
	} `json:"rules"`
}

func (a *rulesAPI) rule(t *testing.T, name string) int {
	t.Helper()
	for i, r := range a.Rules {
		if r.Name == name {
			return i
		}
	}
	t.Fatalf("no rule %q in %+v", name, a.Rules)
	return -1
}

const reloadRulesV1 = `
rules:
  - name: count   # unchanged: kept
    on: in/+
    window: {count: 100, of: "1"}
    do: [{publish: {topic: '"out/count"', payload: window.count}}]
  - name: flaky   # its action changes: changed, its last error stays
    on: in/+
    if: payload.c > 1
    do: [{publish: {topic: '"out/flaky"'}}]
  - name: slow    # its throttle changes: reset, its last error goes
    on: in/+
    if: payload.c > 1
    throttle: 1h
    do: [{publish: {topic: '"out/slow"'}}]
  - name: gone    # removed
    on: in/+
    do: [{publish: {topic: '"out/gone"'}}]
`

const reloadRulesV2 = `
rules:
  - name: new     # added
    on: in/+
    do: [{publish: {topic: '"out/new"'}}]
  - name: count
    on: in/+
    window: {count: 100, of: "1"}
    do: [{publish: {topic: '"out/count"', payload: window.count}}]
  - name: flaky
    on: in/+
    if: payload.c > 1
    do: [{publish: {topic: '"out/flaky2"'}}]
  - name: slow
    on: in/+
    if: payload.c > 1
    throttle: 2h
    do: [{publish: {topic: '"out/slow"'}}]
`

// A rule file rewritten on disk: the reload's diff shows in /api/v1/rules and the
// metrics, and the kept rules' state and last error with it.
func TestReloadDiffAndLastErrorInRulesAPI(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, reloadRulesV1)
	e := startEngine(t, testConfig(t, dir))
	url := "http://" + e.HTTPAddr() + "/api/v1/rules"
	dev := connect(t, e.BrokerAddr(), "dev", nil, nil)
	sent := time.Now()
	dev.pub(t, &paho.Publish{Topic: "in/a", Payload: []byte(`not json`), QoS: 1}) // payload.c fails
	var api rulesAPI
	eventually(t, "the event evaluated", func() bool {
		api = rulesAPI{}
		getJSON(t, url, &api)
		return api.Rules[api.rule(t, "flaky")].Errors == 1 && api.Rules[api.rule(t, "slow")].Errors == 1 && api.Rules[api.rule(t, "count")].Keys == 1
	})
	if api.LastReload != nil {
		t.Fatalf("last_reload before any reload: %+v", api.LastReload)
	}
	flaky := api.Rules[api.rule(t, "flaky")]
	if !strings.HasPrefix(flaky.LastError, "if: ") || flaky.LastErrorTopic != "in/a" || flaky.LastErrorAt == nil ||
		flaky.LastErrorAt.Before(sent) || flaky.LastErrorAt.After(time.Now()) {
		t.Fatalf("flaky: last_error %q at %v on %q, want an `if` error on in/a since %v", flaky.LastError, flaky.LastErrorAt, flaky.LastErrorTopic, sent)
	}
	if c := api.Rules[api.rule(t, "count")]; c.LastError != "" || c.LastErrorAt != nil || c.LastErrorTopic != "" {
		t.Fatalf("count has a last error: %+v", c)
	}

	writeRules(t, dir, reloadRulesV2)
	// Wait for the set with the new rule: on a slow machine the watcher may also reload
	// after the temporary file appears, with nothing changed.
	eventually(t, "reload", func() bool {
		api = rulesAPI{}
		getJSON(t, url, &api)
		return api.LastReload != nil && len(api.Rules) > 0 && api.Rules[0].Name == "new"
	})
	want := map[string][]string{"added": {"new"}, "removed": {"gone"}, "reset": {"slow"}, "changed": {"flaky"}, "kept": {"count"}}
	if d := cmp.Diff(want, api.LastReload.Diff); d != "" || api.LastReload.Error != "" {
		t.Fatalf("last_reload error %q, diff (-want +got):\n%s", api.LastReload.Error, d)
	}
	for name, keys := range map[string]int{"new": 0, "count": 1, "flaky": 0, "slow": 0} {
		if got := api.Rules[api.rule(t, name)].Keys; got != keys {
			t.Errorf("rule %s holds %d keys, want %d", name, got, keys)
		}
	}
	if got := api.Rules[api.rule(t, "flaky")]; got.LastError != flaky.LastError || !got.LastErrorAt.Equal(*flaky.LastErrorAt) || got.Errors != 1 {
		t.Errorf("flaky after a reload that keeps its state: last_error %q at %v, errors %d; want %q at %v, 1",
			got.LastError, got.LastErrorAt, got.Errors, flaky.LastError, flaky.LastErrorAt)
	}
	if got := api.Rules[api.rule(t, "slow")]; got.LastError != "" || got.LastErrorAt != nil || got.Errors != 0 {
		t.Errorf("slow after a reset: last_error %q at %v, errors %d; want none", got.LastError, got.LastErrorAt, got.Errors)
	}
	for change, n := range map[string]float64{"added": 1, "removed": 1, "reset": 1, "changed": 1} {
		if got := testutilValue(e, "deviceless_rules_reload_changes_total", change); got != n {
			t.Errorf("deviceless_rules_reload_changes_total{change=%q} = %v, want %v", change, got, n)
		}
	}
}
