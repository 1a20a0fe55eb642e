// Command go-echo is a Deviceless function compiled to WebAssembly (WASI preview 1):
//
//	GOOS=wasip1 GOARCH=wasm go build -o go-echo.wasm ./examples/wasm/go-echo
//
// It reads the invocation JSON on stdin and writes one JSON value on stdout, as every
// function does (docs/design.md, "Function contract"): it asks the agent to switch a line on
// for 30 seconds (args.for; "" for no revert) — args.line (default "fan") to args.value
// (default 1) — and returns the
// invocation's args as its result. It uses only the standard library, so it also builds and
// runs natively (`go run ./examples/wasm/go-echo <<<'{"args":{}}'`).
package main

import (
	"encoding/json"
	"fmt"
	"os"
)

type invocation struct {
	ID       string         `json:"id"`
	Function string         `json:"function"`
	Args     map[string]any `json:"args"`
}

type actuation struct {
	Line  string `json:"line"`
	Value int    `json:"value"`
	For   string `json:"for,omitempty"`
}

type output struct {
	Actuate []actuation `json:"actuate"`
	Result  any         `json:"result"`
}

func main() {
	var inv invocation
	if err := json.NewDecoder(os.Stdin).Decode(&inv); err != nil {
		fmt.Fprintln(os.Stderr, "go-echo: reading the invocation:", err)
		os.Exit(1)
	}
	line, _ := inv.Args["line"].(string)
	if line == "" {
		line = "fan"
	}
	value := 1
	if v, ok := inv.Args["value"].(float64); ok {
		value = int(v)
	}
	hold := "30s"
	if f, ok := inv.Args["for"].(string); ok {
		hold = f // "" holds the value until the next actuation
	}
	out := output{
		Actuate: []actuation{{Line: line, Value: value, For: hold}},
		Result: map[string]any{
			"function": os.Getenv("DEVICELESS_FUNCTION"),
			"id":       os.Getenv("DEVICELESS_INVOCATION_ID"),
			"echo":     inv.Args,
		},
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "go-echo: writing the result:", err)
		os.Exit(1)
	}
}
