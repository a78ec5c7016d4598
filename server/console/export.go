package console

import (
	"encoding/json"
	"net/http"
	"net/url"
)

// ExportPath is the user list's download (under the console's path): the
// management API's export of the users the list's filters select, as
// JSON Lines. It is a POST with the CSRF token like every action, since
// an export reads everybody and is audited.
const ExportPath = "/users/export"

func (h *Handler) exportUsers(w http.ResponseWriter, r *http.Request, v *view) {
	conds, problems := h.usersWhere(r.URL.Query(), v.Lang)
	if len(problems) > 0 {
		h.fail(w, r, v, http.StatusBadRequest, problems[0])
		return
	}
	params := url.Values{}
	if len(conds) > 0 {
		data, err := json.Marshal(map[string]any{"$and": conds})
		if err != nil {
			h.fail(w, r, v, http.StatusBadRequest, err.Error())
			return
		}
		params.Set("where", string(data))
	}
	name := "users-" + h.o.Store.Now().Format("20060102-150405") + ".jsonl"
	h.o.API.Forward(&attachment{ResponseWriter: w, name: name}, r, v.Admin, http.MethodGet, h.o.Prefix+"/v1/export/users/?"+params.Encode())
}

// attachment names the download when the answer is a success (an error
// is shown as the API's JSON).
type attachment struct {
	http.ResponseWriter
	name  string
	wrote bool
}

func (a *attachment) WriteHeader(code int) {
	if !a.wrote && code == http.StatusOK {
		a.Header().Set("Content-Disposition", `attachment; filename="`+a.name+`"`)
	}
	a.wrote = true
	a.ResponseWriter.WriteHeader(code)
}

func (a *attachment) Write(b []byte) (int, error) {
	if !a.wrote {
		a.WriteHeader(http.StatusOK)
	}
	return a.ResponseWriter.Write(b)
}

// Unwrap lets the export flush and extend its deadlines.
func (a *attachment) Unwrap() http.ResponseWriter { return a.ResponseWriter }
