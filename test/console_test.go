package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// consoleScreenshot, when set, is where TestConsoleDemo writes its screenshot after letting
// the console fill for a minute and a half (the README's docs/console.png):
//
//	go test -run ConsoleDemo ./test -console.screenshot=$PWD/docs/console.png
var consoleScreenshot = flag.String("console.screenshot", "", "write the web console's screenshot to this PNG file (after 90 s of the demo)")

// playwrightVersion is what scripts/setup-browser.sh installs.
const playwrightVersion = "1.65.1"

// browser finds Debian's Chromium and playwright-core as scripts/setup-browser.sh installs
// them (DEVICELESS_CHROMIUM, DEVICELESS_PLAYWRIGHT override them) and fails the test when
// one is missing.
func browser(t testing.TB) (chromium, playwright string) {
	t.Helper()
	chromium = os.Getenv("DEVICELESS_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("Chromium is not installed at %s (DEVICELESS_CHROMIUM): %s", chromium, setupHint)
	}
	playwright = os.Getenv("DEVICELESS_PLAYWRIGHT")
	if playwright == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				t.Fatalf("no home folder to find playwright-core in (%v); set DEVICELESS_PLAYWRIGHT: %s", err, setupHint)
			}
			cache = filepath.Join(home, ".cache")
		}
		playwright = filepath.Join(cache, "deviceless", "playwright-core-"+playwrightVersion)
	}
	if _, err := os.Stat(filepath.Join(playwright, "node_modules", "playwright-core", "package.json")); err != nil {
		t.Fatalf("playwright-core %s is not installed in %s (DEVICELESS_PLAYWRIGHT): %s", playwrightVersion, playwright, setupHint)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node (Node.js) is not installed: %s", setupHint)
	}
	return chromium, playwright
}

// consoleReport is the JSON line test/console/console.mjs prints.
type consoleReport struct {
	browserReport
	Lines map[string]int `json:"lines"`
	Loop  struct {
		Rule   string   `json:"rule"`
		Cells  []string `json:"cells"`
		Stages []string `json:"stages"`
	} `json:"loop"`
	Chart   map[string]string `json:"chart"`
	Dryrun  string            `json:"dryrun"`
	Seconds float64           `json:"seconds"`
}

// browserReport is what every test/*.mjs browser script reports on its last line.
type browserReport struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
	Steps []struct {
		Name string  `json:"name"`
		At   float64 `json:"at_s"`
	} `json:"steps"`
}

func (r *browserReport) report() *browserReport { return r }

// runBrowser runs a test/*.mjs script in headless Chromium with env and decodes its last
// line into rep, failing the test on a failure or a report that is not ok.
func runBrowser[R interface{ report() *browserReport }](t *testing.T, what, script string, timeout time.Duration, env []string, rep R) {
	t.Helper()
	chromium, playwright := browser(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(repoRoot, "test", script))
	cmd.Env = append(os.Environ(), append([]string{"CHROMIUM=" + chromium, "PLAYWRIGHT_DIR=" + playwright}, env...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), rep); jerr != nil || err != nil || !rep.report().OK {
		t.Fatalf("%s in Chromium: %v\nstdout:\n%s\nstderr:\n%s", what, err, stdout.String(), stderr.String())
	}
	for _, s := range rep.report().Steps {
		t.Logf("%6.2fs  %s", s.At, s.Name)
	}
}

// runConsole runs test/console/console.mjs against url and returns its report.
func runConsole(t *testing.T, url string, env ...string) consoleReport {
	t.Helper()
	var rep consoleReport
	runBrowser(t, "console", "console/console.mjs", 5*time.Minute, append([]string{"CONSOLE_URL=" + url}, env...), &rep)
	return rep
}

// TestConsoleDemo opens the web console of a real demo (engine, agent on podman,
// simulated greenhouses) in headless Chromium: no console errors, the demo's agent and
// its lines with their values, a loop arriving live with its stages, a chart with points,
// and a dry run that fires greenhouse-cold and greenhouse-frost.
func TestConsoleDemo(t *testing.T) {
	podmanSocket(t) // the demo's agent needs it; fail early with the setup hint
	browser(t)
	dir := t.TempDir()
	demo := startProc(t, dir, "demo", nil, bin, "demo", "--listen", freeAddr(t), "--http", freeAddr(t))
	// The first line the demo prints (log lines on stderr aside) is the console's URL.
	var first string
	waitFor(t, 60*time.Second, "the demo's first line", func() bool {
		if demo.exited() {
			t.Fatalf("the demo exited: %v", demo.err)
		}
		for _, l := range demo.out.Lines() {
			if !strings.HasPrefix(l, "time=") {
				first = l
				return true
			}
		}
		return false
	})
	rest, ok := strings.CutPrefix(first, "console: ")
	if !ok {
		t.Fatalf("the demo's first line is not the console's URL: %q", first)
	}
	url := strings.Fields(rest)[0]
	if !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.HasSuffix(url, "/") {
		t.Fatalf("console URL %q", url)
	}
	shot := filepath.Join(dir, "console.png")
	env := []string{"CONSOLE_MODE=demo", "SCREENSHOT=" + shot}
	if *consoleScreenshot != "" {
		shot = *consoleScreenshot
		env = []string{"CONSOLE_MODE=demo", "SCREENSHOT=" + shot, "SCREENSHOT_AFTER_S=90"}
	}
	start := time.Now()
	rep := runConsole(t, url, env...)
	t.Logf("console checks took %s: lines %v, live loop %s, chart %v", time.Since(start).Round(time.Millisecond), rep.Lines, rep.Loop.Rule, rep.Chart)
	if len(rep.Lines) != 3 {
		t.Errorf("lines %v, want fan, heater, valve", rep.Lines)
	}
	png, err := os.ReadFile(shot)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 10000 {
		t.Fatalf("screenshot %s: %d bytes, %v", shot, len(png), err)
	}
	if err := demo.Stop(t, 30*time.Second); err != nil {
		t.Fatalf("demo: %v", err)
	}
}

// TestConsoleSignIn opens the console of an engine whose API needs credentials: the page
// loads, asks for them, refuses a wrong token, works with a viewer token kept in session
// storage (rules, the live stream, a dry run), and forgets it on sign-out.
func TestConsoleSignIn(t *testing.T) {
	browser(t)
	dir := t.TempDir()
	const viewer = "console-viewer-token-0123456789"
	sum := sha256.Sum256([]byte(viewer))
	httpAddr := freeAddr(t)
	conf := filepath.Join(dir, "deviceless.yaml")
	yaml := "broker: {listen: " + freeAddr(t) + ", allow_anonymous: false}\n" +
		"rules: [" + filepath.Join(repoRoot, "examples", "greenhouse", "rules") + "]\n" +
		"http: " + httpAddr + "\n" +
		`api: {tokens: [{name: console, hash: "sha256:` + hex.EncodeToString(sum[:]) + `", role: viewer}]}` + "\n"
	if err := os.WriteFile(conf, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	engine := startProc(t, dir, "engine", nil, bin, "engine", "-c", conf)
	waitFor(t, 30*time.Second, "the engine's /readyz", func() bool {
		if engine.exited() {
			t.Fatalf("engine exited: %v\n%s", engine.err, strings.Join(engine.out.Lines(), "\n"))
		}
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	runConsole(t, "http://"+httpAddr+"/", "CONSOLE_MODE=signin", "CONSOLE_TOKEN="+viewer)
}
