package minapp

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"userve.dev/userve/server/auth"
	"userve.dev/userve/server/httpx"
	"userve.dev/userve/server/store"
)

// importResult is one record's line of the import answer.
type importResult struct {
	Index  int    `json:"index"`
	Status string `json:"status"`
	UserID int64  `json:"user_id,omitempty"`
	Error  string `json:"error,omitempty"`
}

// ImportAnswer is the body of POST /v1/import/users/.
type ImportAnswer struct {
	Created int `json:"created"`
	Updated int `json:"updated"`
	Skipped int `json:"skipped"`
	Errors  int `json:"errors"`
	// WeakHashes counts the created or updated records whose password
	// hash is below OWASP's minimums: kept (it is the user's real hash)
	// and replaced by the tenant's bcrypt at the user's first login.
	WeakHashes int            `json:"weak_hashes"`
	DryRun     bool           `json:"dry_run,omitempty"`
	Results    []importResult `json:"results"`
}

// importParams are the import's query parameters.
type importParams struct {
	format string
	policy store.ImportPolicy
	dryRun bool
}

// ParseImportParams reads ?format=&on_conflict=&dry_run=.
func ParseImportParams(q url.Values) (importParams, error) {
	p := importParams{policy: store.ImportSkip}
	for name, values := range q {
		if len(values) != 1 {
			return p, paramErr(name, "given %d times; give it once", len(values))
		}
		v := values[0]
		switch name {
		case "format":
		case "on_conflict":
			switch store.ImportPolicy(v) {
			case store.ImportSkip, store.ImportUpdate, store.ImportFail:
				p.policy = store.ImportPolicy(v)
			default:
				return p, paramErr(name, "%q must be skip, update or fail", v)
			}
		case "dry_run":
			switch v {
			case "1", "true":
				p.dryRun = true
			case "0", "false", "":
			default:
				return p, paramErr(name, "%q must be 0 or 1", v)
			}
		default:
			return p, paramErr(name, "unknown parameter (import takes format, on_conflict and dry_run)")
		}
	}
	f, err := ParseImportFormat(q.Get("format"))
	if err != nil {
		return p, paramErr("format", "%v", err)
	}
	p.format = f
	return p, nil
}

// ImportUsers is POST /v1/import/users/: at most 1,000 records, one result
// each, in order.
func (h *Handler) ImportUsers(w http.ResponseWriter, r *http.Request) {
	values, ok := query(w, r)
	if !ok {
		return
	}
	params, err := ParseImportParams(values)
	if err != nil {
		badRequest(w, err)
		return
	}
	body := http.MaxBytesReader(w, r.Body, MaxImportBodyBytes)
	var (
		users   []store.ImportUser
		at      []int // users[k] is record at[k]
		answers []importResult
	)
	err = ReadImportRecords(body, MaxImportRecords, func(i int, raw []byte, recErr error) {
		answers = append(answers, importResult{Index: i})
		if recErr == nil {
			var u *store.ImportUser
			u, recErr = h.schema.DecodeImportRecord(params.format, raw)
			if recErr == nil {
				users = append(users, *u)
				at = append(at, i)
				return
			}
		}
		answers[i].Status, answers[i].Error = store.ImportError, recErr.Error()
	})
	var mbe *http.MaxBytesError
	var be *ImportBodyError
	switch {
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", MaxImportBodyBytes))
		return
	case errors.Is(err, ErrTooManyRecords), errors.As(err, &be):
		badRequest(w, err)
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, "reading the body failed: "+err.Error())
		return
	}
	start := time.Now()
	results, err := h.store.ImportUsers(r.Context(), users, store.ImportOptions{Policy: params.policy, DryRun: params.dryRun})
	if err != nil {
		h.storeError(w, r, err, "import")
		return
	}
	out := ImportAnswer{DryRun: params.dryRun, Results: answers}
	for k, res := range results {
		a := &answers[at[k]]
		a.Status, a.UserID, a.Error = res.Status, res.UserID, res.Error
		if res.Status != store.ImportError {
			a.Error = ""
		}
		if res.Status == store.ImportCreated || res.Status == store.ImportUpdated {
			if info, err := auth.InspectHash(users[k].Profile.PasswordHash); err == nil && info.Weak {
				out.WeakHashes++
			}
		}
	}
	for _, a := range answers {
		switch a.Status {
		case store.ImportCreated:
			out.Created++
		case store.ImportUpdated:
			out.Updated++
		case store.ImportSkipped:
			out.Skipped++
		default:
			out.Errors++
		}
	}
	h.log.Info("import batch", "format", params.format, "on_conflict", params.policy, "dry_run", params.dryRun,
		"records", len(answers), "created", out.Created, "updated", out.Updated, "skipped", out.Skipped,
		"errors", out.Errors, "weak_hashes", out.WeakHashes, "took", time.Since(start).Round(time.Millisecond))
	httpx.WriteJSON(w, http.StatusOK, out)
}

// ExportUsers is GET /v1/export/users/?where=...&include=password_hash:
// JSON Lines of every matching user, in userve's own import format.
func (h *Handler) ExportUsers(w http.ResponseWriter, r *http.Request) {
	values, ok := query(w, r)
	if !ok {
		return
	}
	withHash := false
	filter := url.Values{}
	for name, vs := range values {
		if len(vs) != 1 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%s: given %d times; give it once", name, len(vs)))
			return
		}
		switch name {
		case "where":
			filter.Set(name, vs[0])
		case "include":
			if vs[0] != "password_hash" {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("include: %q is not password_hash", vs[0]))
				return
			}
			withHash = true
		default:
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%s: unknown parameter (export takes where and include)", name))
			return
		}
	}
	q, err := ParseListV22(filter, h.limits, h.schema)
	if err != nil {
		badRequest(w, err)
		return
	}
	groups, err := h.store.GroupNames(r.Context())
	if err != nil {
		h.storeError(w, r, err, "groups")
		return
	}
	if withHash {
		h.log.Warn("export includes password hashes", "remote", r.RemoteAddr, "where", filter.Get("where"))
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	bw := bufio.NewWriterSize(w, 32<<10)
	enc := json.NewEncoder(bw)
	flusher, _ := w.(http.Flusher)
	n, started := 0, false
	start := time.Now()
	err = h.store.ExportUsers(r.Context(), q.Filter, func(u *store.ExportedUser) error {
		started = true
		n++
		if err := enc.Encode(h.schema.exportJSON(u, groups, withHash)); err != nil {
			return err
		}
		if n%256 == 0 {
			if err := bw.Flush(); err != nil {
				return err
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		return nil
	})
	if err != nil && !started {
		h.storeError(w, r, err, "profiles")
		return
	}
	if err != nil {
		// The status is sent: the stream ends with an error line the CLI
		// recognises, instead of ending silently short.
		h.log.Error("export stopped", "users", n, "error", err)
		_ = enc.Encode(map[string]string{"_error": "export stopped after " + fmt.Sprint(n) + " users: " + err.Error()})
	}
	_ = bw.Flush()
	h.log.Info("export", "users", n, "password_hash", withHash, "took", time.Since(start).Round(time.Millisecond))
}

// exportJSON is one export line: the management profile (custom fields at
// the top level), the end-user fields, groups with names, followings and
// wallet balances, and the password hash only when asked for.
func (s Schema) exportJSON(u *store.ExportedUser, groups map[int64]string, withHash bool) map[string]any {
	p := u.Profile
	out := s.profileJSON(p)
	out["_bio"], out["_location"], out["_bg"] = p.Bio, p.Location, p.BG
	gs := make([]map[string]any, 0, len(p.Groups))
	for _, id := range p.Groups {
		gs = append(gs, map[string]any{"id": id, "name": groups[id]})
	}
	out["groups"] = gs
	out["followings"] = u.Followings
	if u.Followings == nil {
		out["followings"] = []int64{}
	}
	wallet := map[string]int64{"wallet": 0, "new_wallet": 0, "currency": 0}
	if u.Wallet != nil {
		wallet["wallet"], wallet["new_wallet"], wallet["currency"] = u.Wallet.Wallet, u.Wallet.NewWallet, u.Wallet.Currency
	}
	out["wallet"] = wallet
	if withHash && p.PasswordHash != "" {
		out["_password_hash"] = p.PasswordHash
	}
	return out
}
