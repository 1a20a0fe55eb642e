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
	"strings"
	"time"

	"github.com/deviceless/deviceless/broker"
	"github.com/deviceless/deviceless/engine"
	"github.com/deviceless/deviceless/protocol"
)

func invokeCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("invoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	argsJSON := fs.String("args", "{}", "arguments as a JSON object")
	target := fs.String("target", "", `target as JSON, e.g. {"agent":"gh1-edge"} or {"labels":{"site":"greenhouse"}}`)
	addr := fs.String("http", "127.0.0.1:8080", "the engine's HTTP API address")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long")
	token := fs.String("token", os.Getenv("DEVICELESS_TOKEN"), "API token (default $DEVICELESS_TOKEN)")
	user := fs.String("user", os.Getenv("DEVICELESS_USER"), "USER:PASSWORD of a broker user with the client or admin role (default $DEVICELESS_USER)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: deviceless invoke FUNCTION [--args JSON] [--target JSON] [--http ADDR] [--token T | --user U:P]\n\nInvokes a function through the engine and prints the result. Exits 1 unless its status is ok.\nCredentials: an API token (api.tokens) or a broker user with the client or admin role.\n\n")
		fs.PrintDefaults()
	}
	// Accept the function name before or after the flags.
	var function string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		function, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if function == "" && fs.NArg() > 0 {
		function = fs.Arg(0)
	}
	if function == "" {
		fs.Usage()
		return 2
	}
	req := protocol.InvokeRequest{}
	if err := json.Unmarshal([]byte(*argsJSON), &req.Args); err != nil {
		fmt.Fprintf(stderr, "--args: not a JSON object: %v\n", err)
		return 2
	}
	if *target != "" {
		req.Target = &protocol.Target{}
		if err := json.Unmarshal([]byte(*target), req.Target); err != nil {
			fmt.Fprintf(stderr, "--target: %v\n", err)
			return 2
		}
	}
	body, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	u := "http://" + *addr + "/api/v1/invoke/" + url.PathEscape(function)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	hreq.Header.Set("Content-Type", "application/json")
	switch {
	case *token != "":
		hreq.Header.Set("Authorization", "Bearer "+*token)
	case *user != "":
		name, pass, _ := strings.Cut(*user, ":")
		hreq.SetBasicAuth(name, pass)
	}
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		fmt.Fprintf(stderr, "invoke %s: %v (is the engine running with its HTTP API on %s?)\n", function, err, *addr)
		return 1
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "invoke %s: %s: %s\n", function, resp.Status, bytes.TrimSpace(out))
		return 1
	}
	stdout.Write(out)
	var res protocol.Result
	if json.Unmarshal(out, &res) != nil || res.Status != protocol.StatusOK {
		return 1
	}
	return 0
}

func tokenCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: deviceless token [NAME [ROLE]]\n\nMakes a random HTTP API token. Prints the token (give it to the program, e.g. as\nDEVICELESS_TOKEN) and the entry for the engine config's api.tokens (only its hash is stored).\nROLE is viewer (read only), client (read and invoke; default), developer (also deploys\nfunctions under the namespace NAME) or admin.\n")
	}
	if err := fs.Parse(args); err != nil || fs.NArg() > 2 {
		return 2
	}
	name, role := "program", "client"
	if fs.NArg() > 0 {
		name = fs.Arg(0)
	}
	if fs.NArg() > 1 {
		role = fs.Arg(1)
	}
	if role != "viewer" && role != "client" && role != "developer" && role != "admin" {
		fmt.Fprintf(stderr, "token: role %q: use viewer, client, developer or admin\n", role)
		return 2
	}
	tok, hash := engine.NewAPIToken()
	fmt.Fprintf(stdout, "token: %s\napi:\n  tokens:\n    - {name: %s, hash: %q, role: %s}\n", tok, name, hash, role)
	return 0
}

func passwdCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: deviceless passwd [PASSWORD]\n\nPrints a bcrypt hash for the broker's users list. Without an argument the password is read from the first line of standard input.\n")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	pw := fs.Arg(0)
	if fs.NArg() == 0 {
		line, err := readLine(stdin)
		if err != nil {
			fmt.Fprintln(stderr, "passwd: reading standard input:", err)
			return 1
		}
		pw = line
	}
	hash, err := broker.HashPassword(pw)
	if err != nil {
		fmt.Fprintln(stderr, "passwd:", err)
		return 1
	}
	fmt.Fprintln(stdout, hash)
	return 0
}

func readLine(r io.Reader) (string, error) {
	var b bytes.Buffer
	buf := make([]byte, 1)
	for b.Len() < 4096 {
		n, err := r.Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				break
			}
			b.WriteByte(buf[0])
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
	}
	return strings.TrimRight(b.String(), "\r"), nil
}
