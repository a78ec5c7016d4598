package console_test

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// The import page cuts a JSON array into records without parsing it
// (static/more.js, splitRecords). In the browser, over 2,000 generated
// arrays (strings holding brackets, braces, commas, quotes, escapes and
// line breaks; nested arrays and objects; scalars; any white space), each
// cut record parses to the array's element, and JSON Lines files cut into
// their non-blank lines. A file that is neither is refused.
func TestImportSplitterInBrowser(t *testing.T) {
	e := newEnv(t)
	tb := e.tab(800, 600)
	tb.signIn(adminToken)
	tb.open("/transfer/")
	bad := value(tb, "split generated files", chromedp.Evaluate[[]string](`(() => {
  let seed = 7;
  const rnd = n => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
  const pieces = ["a", "[", "]", "{", "}", ",", "\"", "\\", "\n", " ", "中", "\u2028", ":", "x]y", "},{"];
  const str = () => { let s = ""; for (let i = rnd(6); i > 0; i--) s += pieces[rnd(pieces.length)]; return s; };
  const val = d => {
    switch (d > 2 ? rnd(4) : rnd(6)) {
    case 0: return str();
    case 1: return rnd(1000) - 500;
    case 2: return rnd(2) === 0;
    case 3: return null;
    case 4: { const a = []; for (let i = rnd(4); i > 0; i--) a.push(val(d + 1)); return a; }
    default: { const o = {}; for (let i = rnd(4); i > 0; i--) o[str()] = val(d + 1); return o; }
    }
  };
  const ws = () => [" ", "\n", "\t", "\r\n", "", "  \n  "][rnd(6)];
  const msgs = { empty: "empty", notJSON: "notJSON" };
  const bad = [];
  for (let n = 0; n < 2000; n++) {
    const arr = []; for (let i = rnd(6); i > 0; i--) arr.push(rnd(3) === 0 ? val(0) : { id: n * 10 + i, name: str(), bio: val(1) });
    const text = (rnd(2) ? "\ufeff" : "") + ws() + "[" + ws() + arr.map(v => JSON.stringify(v, null, rnd(2) ? 2 : 0)).join(ws() + "," + ws()) + ws() + "]" + ws();
    let got;
    try { got = splitRecords(text, msgs); } catch (err) { bad.push("threw " + err + " on " + JSON.stringify(text)); continue; }
    if (got.length !== arr.length) { bad.push(got.length + " records of " + arr.length + ": " + JSON.stringify(text)); continue; }
    got.forEach((rec, i) => {
      let same = false;
      try { same = !rec.includes("\n") && JSON.stringify(JSON.parse(rec)) === JSON.stringify(arr[i]); } catch (err) {}
      if (!same) bad.push("record " + i + " " + JSON.stringify(rec) + " of " + JSON.stringify(text));
    });
  }
  const lines = splitRecords("{\"a\":1}\r\n\n  \n{\"b\":\"]\"}\n", msgs);
  if (JSON.stringify(lines) !== JSON.stringify(["{\"a\":1}", "{\"b\":\"]\"}"])) bad.push("JSON Lines: " + JSON.stringify(lines));
  for (const text of ["", "  \n", "name,id\n1,2", "[{\"a\":1}", "[\"unterminated]"]) {
    try { splitRecords(text, msgs); bad.push("accepted " + JSON.stringify(text)); } catch (err) {}
  }
  return bad.slice(0, 5);
})()`))
	if len(bad) != 0 {
		t.Fatalf("splitRecords: %q", bad)
	}
}
