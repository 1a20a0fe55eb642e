// Command fn is the Go test module of package wasm, one program for every case, so that the
// tests compile one Go module (compiling 2-4 MB of Go wasm takes seconds, more under -race).
// Its first argument (Job.Command) chooses what it does:
//
//	counter  increments a global once and prints it: a fresh instance prints {"counter":1}
//	panic    panics: the Go runtime prints the panic on stderr and exits 2
//	grow     keeps allocating 1 MiB blocks until the runtime's memory.grow is refused and it
//	         dies with "fatal error: out of memory"
//	escape   tries to reach the host: files, folders, and a dial to $ADDR (where the test
//	         listens); prints one JSON object with each attempt's error ("ok" if it worked).
//	         Go's net.Listen works on wasip1, but in the process only: the standard library
//	         simulates a network there (net_fake.go); it is reported as "in-process listen".
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
)

var (
	counter int
	keep    [][]byte
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: fn counter|panic|grow|escape")
		os.Exit(1)
	}
	switch os.Args[1] {
	case "counter":
		counter++
		fmt.Printf("{\"counter\":%d}\n", counter)
	case "panic":
		panic("boom")
	case "grow":
		for i := 0; ; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = byte(i)
			}
			keep = append(keep, b)
		}
	case "escape":
		escape()
	default:
		fmt.Fprintln(os.Stderr, "fn: unknown mode", os.Args[1])
		os.Exit(1)
	}
}

func escape() {
	res := map[string]string{}
	note := func(what string, err error) {
		if err != nil {
			res[what] = err.Error()
		} else {
			res[what] = "ok"
		}
	}
	_, err := os.ReadFile("/etc/passwd")
	note("read /etc/passwd", err)
	_, err = os.ReadDir("/")
	note("read dir /", err)
	err = os.WriteFile("x", []byte("x"), 0o600)
	note("write ./x", err)
	c, err := net.Dial("tcp", os.Getenv("ADDR"))
	if err == nil {
		c.Close()
	}
	note("dial $ADDR", err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err == nil {
		l.Close()
	}
	note("in-process listen", err)
	_ = json.NewEncoder(os.Stdout).Encode(res)
}
