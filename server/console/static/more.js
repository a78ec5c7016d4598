// userve console: the import page's uploader and the user list's "select
// every user on this page". No inline script (Content-Security-Policy);
// texts come from the page (data-msg-*), in its language.
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("input[data-select-all]").forEach(function (all) {
    var name = all.getAttribute("data-select-all");
    all.addEventListener("change", function () {
      document.querySelectorAll("input[type=checkbox][name=" + name + "]").forEach(function (box) {
        box.checked = all.checked;
      });
    });
  });
  var form = document.getElementById("import-form");
  if (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      startImport(form);
    });
  }
});

// fmt fills %d and %s in order.
function fmt(text) {
  var args = Array.prototype.slice.call(arguments, 1);
  return text.replace(/%[ds]/g, function () { return String(args.shift()); });
}

// splitRecords cuts a file into its records' texts: JSON Lines (one
// object a line) or a JSON array, whose elements are cut without being
// parsed (ids and amounts keep every digit) and put on one line each (a
// raw line break in JSON is only ever white space between tokens). It
// throws a message for a file that is neither.
function splitRecords(text, msgs) {
  if (text.charCodeAt(0) === 0xfeff) {
    text = text.slice(1);
  }
  var start = text.search(/\S/);
  if (start < 0) {
    throw msgs.empty;
  }
  if (text[start] === "{") {
    return text.split(/\r?\n/).filter(function (line) { return line.trim() !== ""; });
  }
  if (text[start] !== "[") {
    throw msgs.notJSON;
  }
  var out = [], depth = 0, from = -1, inString = false;
  var push = function (to) {
    out.push(text.slice(from, to).trim().replace(/[\r\n]+/g, " "));
  };
  for (var i = start + 1; i < text.length; i++) {
    var c = text[i];
    if (inString) {
      if (c === "\\") {
        i++;
      } else if (c === "\"") {
        inString = false;
      }
      continue;
    }
    if (c === "\"") {
      inString = true;
      if (depth === 0 && from < 0) {
        from = i;
      }
    } else if (c === "{" || c === "[") {
      if (depth === 0 && from < 0) {
        from = i;
      }
      depth++;
    } else if (c === "}" || c === "]") {
      if (depth === 0) { // the array's end
        if (from >= 0) {
          push(i);
        }
        return out;
      }
      depth--;
    } else if (depth === 0 && c === ",") {
      if (from >= 0) {
        push(i);
      }
      from = -1;
    } else if (depth === 0 && from < 0 && !/\s/.test(c)) {
      from = i;
    }
  }
  throw msgs.notJSON;
}

// batches groups records into batches of at most maxRecords records and
// maxBytes bytes; a record over recordBytes is not sent but answered here
// as the API would.
function batches(records, maxRecords, maxBytes, recordBytes, msgs) {
  var enc = new TextEncoder(), out = [], local = [], cur = { lines: [], at: [], bytes: 0 };
  records.forEach(function (rec, i) {
    var size = enc.encode(rec).length + 1;
    if (size > recordBytes) {
      local.push({ index: i, status: "error", error: fmt(msgs.tooLarge, recordBytes) });
      return;
    }
    if (cur.lines.length >= maxRecords || cur.bytes + size > maxBytes) {
      out.push(cur);
      cur = { lines: [], at: [], bytes: 0 };
    }
    cur.lines.push(rec);
    cur.at.push(i);
    cur.bytes += size;
  });
  if (cur.lines.length > 0) {
    out.push(cur);
  }
  return { batches: out, local: local };
}

// startImport sends the chosen file in batches of whole records, one
// after the other, moving the progress bar as each batch is answered.
async function startImport(form) {
  var d = form.dataset;
  var msgs = { progress: d.msgProgress, done: d.msgDone, stopped: d.msgStopped, noFile: d.msgNoFile,
    notJSON: d.msgNotJson, empty: d.msgEmpty, tooLarge: d.msgTooLarge, signedOut: d.msgSignedOut,
    reading: d.msgReading, shown: d.msgShown };
  var file = form.querySelector("#import-file").files[0];
  var state = document.getElementById("import-state"), bar = document.getElementById("import-progress");
  var status = document.getElementById("import-status"), errorBox = document.getElementById("import-error");
  var results = document.getElementById("import-results"), button = form.querySelector("#import-start");
  errorBox.hidden = true;
  if (!file) {
    showError(errorBox, msgs.noFile);
    return;
  }
  var params = new URLSearchParams({ format: form.querySelector("#import-format").value,
    on_conflict: form.querySelector("#import-policy").value });
  if (form.querySelector("#import-dry").checked) {
    params.set("dry_run", "1");
  }
  // Leaving the page would stop the import half-way: the browser asks.
  var guard = function (ev) {
    ev.preventDefault();
    ev.returnValue = "";
  };
  window.addEventListener("beforeunload", guard);
  button.disabled = true;
  state.hidden = false;
  results.hidden = true;
  bar.removeAttribute("data-done");
  bar.value = 0;
  status.textContent = msgs.reading;
  var totals = { created: 0, updated: 0, skipped: 0, errors: 0, weak_hashes: 0 };
  var rows = [], done = 0, total = 0;
  try {
    var records = splitRecords(await file.text(), msgs);
    total = records.length;
    var plan = batches(records, +d.batchRecords, +d.batchBytes, +d.recordBytes, msgs);
    plan.local.forEach(function (row) { rows.push(row); });
    totals.errors += plan.local.length;
    done = plan.local.length;
    bar.max = total;
    bar.value = done;
    status.textContent = fmt(msgs.progress, done, total);
    for (var b = 0; b < plan.batches.length; b++) {
      var batch = plan.batches[b];
      var answer = await sendBatch(d.batchUrl + "?" + params, batch.lines.join("\n"), form, msgs);
      answer.results.forEach(function (res) {
        res.index = batch.at[res.index];
        rows.push(res);
      });
      ["created", "updated", "skipped", "errors", "weak_hashes"].forEach(function (k) { totals[k] += answer[k] || 0; });
      done += batch.lines.length;
      bar.value = done;
      status.textContent = fmt(msgs.progress, done, total);
    }
    bar.setAttribute("data-done", "1");
    status.textContent = fmt(msgs.done, total);
  } catch (err) {
    showError(errorBox, (err && err.message) || String(err));
    if (total > 0) {
      status.textContent = fmt(msgs.stopped, done, total);
    }
  } finally {
    window.removeEventListener("beforeunload", guard);
    button.disabled = false;
    showResults(results, totals, rows, msgs);
  }
}

// sendBatch posts one batch and answers the API's import answer; a store
// briefly away (503) is tried again, the batch being idempotent.
async function sendBatch(url, body, form, msgs) {
  for (var attempt = 0; ; attempt++) {
    var res = await fetch(url, { method: "POST", body: body, credentials: "same-origin",
      headers: { "Content-Type": "application/x-ndjson", "X-CSRF-Token": csrfToken() } });
    var answer = null;
    try {
      answer = await res.json();
    } catch (e) {
      answer = null;
    }
    if (res.ok && answer && Array.isArray(answer.results)) {
      return answer;
    }
    if (res.status === 503 && attempt < 3) {
      await new Promise(function (done) { setTimeout(done, 2000 * (attempt + 1)); });
      continue;
    }
    if (res.status === 401) {
      throw new Error(msgs.signedOut);
    }
    throw new Error((answer && answer.error_msg) || (res.status + " " + res.statusText));
  }
}

function showError(box, text) {
  box.textContent = text;
  box.hidden = false;
}

// maxRows bounds the per-record rows shown (errors first).
var maxRows = 1000;

function showResults(results, totals, rows, msgs) {
  Object.keys(totals).forEach(function (k) {
    results.querySelector("[data-count=" + k + "]").textContent = String(totals[k]);
  });
  document.getElementById("import-weak-hint").hidden = totals.weak_hashes === 0;
  rows.sort(function (a, b) {
    return (a.status === "error" ? 0 : 1) - (b.status === "error" ? 0 : 1) || a.index - b.index;
  });
  var body = results.querySelector("#import-table tbody");
  body.textContent = "";
  rows.slice(0, maxRows).forEach(function (row) {
    var tr = document.createElement("tr");
    tr.className = "status-" + row.status;
    [String(row.index + 1), row.status, row.user_id ? String(row.user_id) : "", row.error || ""].forEach(function (text) {
      var td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    });
    body.appendChild(tr);
  });
  var note = document.getElementById("import-rows-note");
  note.hidden = rows.length <= maxRows;
  note.textContent = fmt(msgs.shown, Math.min(rows.length, maxRows), rows.length);
  results.hidden = false;
}
