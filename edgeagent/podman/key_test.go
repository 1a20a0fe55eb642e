package podman

import (
	"testing"

	"github.com/deviceless/deviceless/edgeagent/container"
)

// Warm runners and prepared containers are found by key: a deployed function's new
// version (the engine sends name@N as the function) never gets a container of another,
// even with the same code, and a change of code, command, image, memory or environment
// under one name never reuses the old container either.
func TestKeyTellsVersionsApart(t *testing.T) {
	base := container.Job{Function: "alice.fan@1", Image: "localhost/deviceless/python3", Command: []string{"python3", container.CodePath},
		Code: "print(1)", Memory: 64 << 20, Env: map[string]string{"A": "1"}}
	k := key(base)
	for name, change := range map[string]func(*container.Job){
		"version": func(j *container.Job) { j.Function = "alice.fan@2" },
		"code":    func(j *container.Job) { j.Code = "print(2)" },
		"command": func(j *container.Job) { j.Command = []string{"python3", "-u", container.CodePath} },
		"image":   func(j *container.Job) { j.Image = "localhost/deviceless/sh" },
		"memory":  func(j *container.Job) { j.Memory = 32 << 20 },
		"env":     func(j *container.Job) { j.Env = map[string]string{"A": "2"} },
	} {
		j := base
		change(&j)
		if key(j) == k {
			t.Errorf("a change of %s keeps the key %s", name, k)
		}
	}
	same := base
	same.ID, same.Stdin = "other-invocation", []byte(`{"args":{}}`)
	if key(same) != k {
		t.Error("the key depends on the invocation")
	}
}
