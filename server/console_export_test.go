package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"userve.dev/userve/server"
	"userve.dev/userve/server/store"
	"userve.dev/userve/test/mongofixture"
)

// The console's export download is the API's export, with its deadlines:
// behind a listener whose write deadline (300 ms) is far shorter than the
// export of 5,000 users takes, the download through the console session
// still holds every user, because the export route extends the deadline
// of the console's own connection (the console's writer unwraps to it).
// Without that (a writer the ResponseController cannot see through) the
// download was cut at 300 ms. (The 15 s request deadline the console path
// is spared by bulkLimits would need an export of over 15 s to show.)
func TestConsoleExportOutlivesTheWriteDeadline(t *testing.T) {
	st, err := store.Connect(mongofixture.URI(t), mongofixture.NewDatabase(t).Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	const n = 5000
	for lo := 0; lo < n; lo += 1000 {
		batch := make([]store.ImportUser, 1000)
		for i := range batch {
			id := int64(lo + i + 1)
			batch[i] = store.ImportUser{Namespace: "thinksns", SourceID: id, Profile: store.Profile{Username: fmt.Sprintf("slow%05d", id), Nickname: "x"}}
		}
		if _, err := st.ImportUsers(context.Background(), batch, store.ImportOptions{Policy: store.ImportSkip}); err != nil {
			t.Fatal(err)
		}
	}
	timeouts := server.HTTPTimeouts{ReadHeader: time.Second, Read: time.Second, Write: 300 * time.Millisecond}
	base, _, stop := serveStoreWith(t, st, server.Options{HTTP: timeouts})
	t.Cleanup(func() { _ = stop() })
	waitReady(t, base, 30*time.Second)

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.PostForm(base+"/userve/console/login", url.Values{"token": {adminToken}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || len(jar.Cookies(res.Request.URL)) == 0 {
		t.Fatalf("sign-in: %d", res.StatusCode)
	}
	res, err = c.Get(base + "/userve/console/transfer/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the import page: %d %.300s", res.StatusCode, page)
	}
	start := time.Now()
	res, err = c.PostForm(base+"/userve/console/users/export", url.Values{"csrf": {string(m[1])}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	lines := 0
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if !strings.Contains(sc.Text(), `"slow`) {
			t.Fatalf("line %d: %.200s", lines, sc.Text())
		}
		lines++
	}
	took := time.Since(start)
	if res.StatusCode != http.StatusOK || lines != n {
		t.Fatalf("download: %d, %d of %d users in %s (%v)", res.StatusCode, lines, n, took.Round(time.Millisecond), sc.Err())
	}
	if took < timeouts.Write {
		t.Fatalf("the export took %s, within the %s write deadline: the test proves nothing", took, timeouts.Write)
	}
	t.Logf("%d users downloaded in %s", n, took.Round(time.Millisecond))
}
