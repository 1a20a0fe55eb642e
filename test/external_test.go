package e2e

import (
	"fmt"
	"testing"
	"time"
)

// externalACL is a mosquitto ACL file as an operator would write it for Deviceless: the
// engine reads and writes everything, devices write their events, and each agent, whose
// user name is its id, reads and writes only its own topics (%u).
const externalACL = `# the engine (broker.external with username engine)
user engine
topic readwrite #

# the tests' observer
user obs
topic readwrite #

# devices publish events
user dev
topic write e2e/#

# every agent: deviceless/agents/{its id}/... and nothing else
pattern readwrite deviceless/agents/%u/#
`

const externalRules = `
functions:
  ext-echo:
    runtime: sh
    code: |
      read -r inv
      n=$(echo "$inv" | sed -n 's/.*"args":{"n":\([0-9]*\)}.*/\1/p')
      echo "{\"n\":$n}"
    timeout: 20s
    memory: 16Mi
rules:
  - name: ext
    on: e2e/ext
    do:
      - invoke: ext-echo
        target: {labels: {pool: ext}}
        args: {n: payload.n}
`

// TestAgentOnMosquittoWithACL: the engine in external-broker mode and an edge agent both
// connect to a mosquitto 2.0.11 with a password file and an ACL file, the agent with its
// own user, restricted to its own topics. An invocation goes round (device event → rule →
// agent → result); the agent's user reads nothing of another agent's invoke topic and
// cannot forge another agent's result.
func TestAgentOnMosquittoWithACL(t *testing.T) {
	suffix := randHex(3)
	a, other := "e2e-ext-a-"+suffix, "e2e-ext-b-"+suffix
	c := newCluster(t, externalRules, a, other)
	mosq := c.useMosquitto(externalACL)
	c.startEngine()
	c.addAgent(a, map[string]string{"pool": "ext"})
	c.waitAgents(true, a)
	mosq.out.WaitLine(t, 10*time.Second, "New client connected", "u'"+a+"'")

	sub := c.mosquittoSub("observer", "obs", nil, "deviceless/results/#", "e2e/probe")
	c.waitSubscribed(sub, "e2e/probe")

	// The round trip, through mosquitto.
	c.pub("dev", "e2e/ext", `{"n": 7}`, 1)
	res := decode[result](t, waitMessage(t, sub, time.Minute, "deviceless/results/ext-echo", `"status"`))
	if res.Status != "ok" || res.Agent != a || res.Rule != "ext" || compact(res.Output) != `{"n":7}` {
		t.Fatalf("result %+v (output %s); want ok from %s", res, res.Output, a)
	}
	var rec invocationRecord
	for _, r := range c.invocations() {
		if r.ID == res.ID {
			rec = r
		}
	}
	if rec.Status != "ok" || rec.Agent != a || rec.Attempts != 1 {
		t.Fatalf("/api/v1/invocations: %+v; want invocation %s ok on %s in one attempt", rec, res.ID, a)
	}

	// Isolation, with the agent's credentials. mosquitto grants a SUBSCRIBE the ACL denies
	// and delivers nothing on it: a sentinel on the agent's own topic, published after,
	// shows that what came before was not delivered; the observer shows it was there.
	ownProbe, theirInvoke, theirResult := "deviceless/agents/"+a+"/probe", "deviceless/agents/"+other+"/invoke", "deviceless/agents/"+other+"/result"
	spy := c.mosquittoSub("spy", a, nil, theirInvoke, ownProbe)
	c.waitSubscribed(spy, ownProbe)
	control := c.mosquittoSub("control", "obs", nil, theirInvoke, theirResult, ownProbe)
	c.waitSubscribed(control, ownProbe)

	secret := "invocation-for-" + other + "-" + randHex(4)
	c.pub("engine", theirInvoke, secret, 1)
	forged := fmt.Sprintf(`{"id":"forged-%s","agent":%q,"status":"ok"}`, randHex(4), other)
	c.pub(a, theirResult, forged, 1) // mosquitto drops a publish the ACL denies
	sentinel := "sentinel-" + randHex(4)
	c.pub("engine", ownProbe, sentinel, 1)
	waitMessage(t, spy, 30*time.Second, ownProbe, sentinel)
	waitMessage(t, control, 30*time.Second, ownProbe, sentinel)
	waitMessage(t, control, 5*time.Second, theirInvoke, secret) // it was published and routable
	if got := messages(spy, theirInvoke); len(got) != 0 {
		t.Errorf("%s read %d messages on %s: %q", a, len(got), theirInvoke, got)
	}
	if got := messages(control, theirResult); len(got) != 0 {
		t.Errorf("%s published on %s: %q", a, theirResult, got)
	}
}
