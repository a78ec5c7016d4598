package console

import (
	"fmt"
	"io"
	"net/http"
	"net/url"

	"userve.dev/userve/server/httpx"
	"userve.dev/userve/server/minapp"
)

// Import and export (GET transfer/, docs/console.md "Import and export").
//
// An import is the `userve import` CLI run by the page: the browser reads
// the file, cuts it into batches of whole records and sends them one
// after the other to POST import/batch, which hands each to the
// management API's synchronous import (POST /v1/import/users/, audited
// as importUsers under the session's admin). The progress bar is the
// records answered so far; the results are the API's, per record. The
// server keeps no job: nothing can be left "running" by a process that
// died, and an import stopped half-way (tab closed, network gone) is
// finished by importing the same file again with on_conflict=skip.
//
// The export button posts to the user list's download (export.go) without
// filters: every user, password hashes when ticked.

// Import batch bounds: what one console request carries. They keep a
// batch within the server's body limit for non-bulk requests (1 MiB) and
// its 15 s deadline; a record alone is at most the API's own bound.
const (
	importBatchRecords = 200
	importBatchBytes   = httpx.MaxBody - 128<<10 // room for the request's own bytes
	importRecordBytes  = minapp.MaxImportRecordBytes
)

// importFormats and importPolicies are the choices the import form offers
// (the API's format and on_conflict values).
var (
	importFormats  = []string{"minapp", "thinksns", "userve"}
	importPolicies = []string{"skip", "update", "fail"}
)

type transferData struct {
	Formats, Policies []string
	BatchRecords      int
	BatchBytes        int
	RecordBytes       int
}

func (h *Handler) transferPage(w http.ResponseWriter, r *http.Request, v *view) {
	v.Title = v.Lang.T("transfer_title")
	v.Data = transferData{Formats: importFormats, Policies: importPolicies,
		BatchRecords: importBatchRecords, BatchBytes: importBatchBytes, RecordBytes: importRecordBytes}
	h.render(w, http.StatusOK, "transfer", v)
}

// importBatch is POST import/batch?format=&on_conflict=&dry_run= with a
// batch of records (JSON Lines) as the body, sent by the import page's
// script with the X-CSRF-Token header. It answers the API's answer as is.
func (h *Handler) importBatch(w http.ResponseWriter, r *http.Request, v *view) {
	params := url.Values{}
	for k, vs := range r.URL.Query() {
		switch k {
		case "format", "on_conflict", "dry_run":
			params[k] = vs // the API checks the values (and repeats)
		default:
			writeJSONError(w, http.StatusBadRequest, fmt.Sprintf("%s: unknown parameter (an import batch takes format, on_conflict and dry_run)", k))
			return
		}
	}
	body, err := io.ReadAll(r.Body) // bounded by the server's body limit
	if err != nil {
		writeJSONError(w, http.StatusRequestEntityTooLarge, "the batch could not be read: "+err.Error())
		return
	}
	ans := h.o.API.Do(r, v.Admin, http.MethodPost, h.o.Prefix+"/v1/import/users/?"+params.Encode(), body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if ra := ans.Header.Get("Retry-After"); ra != "" {
		w.Header().Set("Retry-After", ra)
	}
	w.WriteHeader(ans.Status)
	_, _ = w.Write(ans.Body)
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(errorBody(msg))
}
