package console_test

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The browser tests drive Debian's chromium headless (chromedp). A missing
// browser is a failure, never a skip: CI must run them.

// chromiumPath is the browser to drive: USERVE_CHROMIUM, else chromium on
// the PATH.
func chromiumPath(t *testing.T) string {
	if p := os.Getenv("USERVE_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("USERVE_CHROMIUM=%s: %v", p, err)
		}
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed: the console's browser tests need it. Run hack/browser/install.sh as root " +
		"(apt-get install chromium; `make test` does), or set USERVE_CHROMIUM to a Chrome or Chromium binary")
	return ""
}

// tab is one headless browser tab on env's server. It fails the test on
// any Content-Security-Policy violation, script error, or request to
// another host.
type tab struct {
	t   *testing.T
	ctx context.Context
	e   *env
	mu  sync.Mutex
	bad []string
}

func (e *env) tab(width, height int) *tab {
	t := e.t
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)), chromedp.NoSandbox, chromedp.WindowSize(width, height),
		chromedp.Flag("lang", "en-US"), chromedp.Flag("disable-gpu", true))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	tb := &tab{t: t, ctx: ctx, e: e}
	host := strings.TrimPrefix(e.srv.URL, "http://")
	// The first call starts the browser; it must have no deadline.
	err := chromedp.Listen(ctx, func(ev any) {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		switch ev := ev.(type) {
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError && !strings.Contains(ev.Entry.Text, "status of 4") {
				tb.bad = append(tb.bad, "console: "+ev.Entry.Text)
			}
		case *runtime.EventExceptionThrown:
			tb.bad = append(tb.bad, "script error: "+ev.ExceptionDetails.Text)
		case *network.EventRequestWillBeSent:
			if u, err := url.Parse(ev.Request.URL); err == nil && u.Host != host && u.Scheme != "data" {
				tb.bad = append(tb.bad, "request to another host: "+ev.Request.URL)
			}
		}
	})
	if err == nil {
		_, err = chromedp.Call(ctx, log.Enable, cdp.Empty{})
	}
	if err == nil {
		_, err = chromedp.Call(ctx, runtime.Enable, cdp.Empty{})
	}
	if err == nil {
		_, err = chromedp.Call(ctx, network.Enable, network.EnableParams{})
	}
	if err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	t.Cleanup(tb.clean)
	return tb
}

// clean fails the test if the browser saw anything bad.
func (tb *tab) clean() {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, b := range tb.bad {
		tb.t.Errorf("in the browser: %s", b)
	}
	tb.bad = nil
}

// do runs steps within a minute, failing the test on an error.
func (tb *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.t.Fatalf("%s: %v", what, err)
	}
}

// value runs an action that answers a value.
func value[T any](tb *tab, what string, a chromedp.Action[T]) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tb.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// open navigates to a console path and waits for its main element.
func (tb *tab) open(path string) {
	tb.t.Helper()
	tb.do("open "+path, chromedp.Navigate(tb.e.console+path), chromedp.WaitReady(chromedp.CSS("#main")))
}

// text is an element's text.
func (tb *tab) text(sel string) string {
	tb.t.Helper()
	return value(tb, "read "+sel, chromedp.Text(chromedp.CSS(sel)))
}

// submit clicks a button or link and waits for the next page's element
// sel (the page it left is marked, so its elements do not count).
func (tb *tab) submit(button, sel string) {
	tb.t.Helper()
	value(tb, "mark the page", chromedp.Evaluate[bool](`document.body.dataset.left = "1"; true`))
	tb.do("click "+button, chromedp.Click(chromedp.CSS(button)),
		chromedp.WaitReady(chromedp.CSS("body:not([data-left])")), chromedp.WaitVisible(chromedp.CSS(sel)))
}

// fill replaces an input's value by typing.
func (tb *tab) fill(sel, text string) {
	tb.t.Helper()
	tb.do("fill "+sel, chromedp.Clear(chromedp.CSS(sel)), chromedp.SendKeys(chromedp.CSS(sel), text))
}

// signIn signs in through the form.
func (tb *tab) signIn(token string) {
	tb.t.Helper()
	tb.open("/login")
	tb.fill("#token", token)
	tb.submit("#login", "#users")
}

// unlabelled counts the page's form controls no label names.
func (tb *tab) unlabelled() int {
	tb.t.Helper()
	return value(tb, "count unlabelled controls", chromedp.Evaluate[int](`[...document.querySelectorAll("input:not([type=hidden]),select,textarea")]
		.filter(e => !e.id || !document.querySelector('label[for="' + e.id + '"]')).length`))
}

// screenshot saves the page as <name>.png into the folder
// USERVE_CONSOLE_SCREENSHOTS names (docs/console.md), if it does.
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	dir := os.Getenv("USERVE_CONSOLE_SCREENSHOTS")
	if dir == "" {
		return
	}
	png := value(tb, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
}
