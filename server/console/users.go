package console

import (
	"encoding/json"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"userve.dev/userve/api/v1alpha1"
)

// The user list (GET users/): the seed's filters and the tenant's custom
// fields, turned into one v2.2 where, so the list is exactly what the API
// answers to that query.

// listLimits are the page sizes offered.
var listLimits = []int64{20, 50, 100}

// listOrders are the sorts offered (the API's order_by values).
var listOrders = []string{"-created_at", "created_at", "-user_id", "user_id", "-updated_at"}

type usersData struct {
	Q            url.Values // the form as sent
	Groups       []group
	Fields       []fieldFilter
	Users        []map[string]any
	Columns      []string // custom fields shown as columns
	Total        int64
	From, To     int64 // 1-based rows shown
	Prev, Next   string
	Limits       []int64
	Limit        int64
	Orders       []string
	Order        string
	GroupName    map[int64]string
	FilterErrors []string
	// ExportAction is the download of the users these filters select.
	ExportAction template.URL
}

type group struct {
	ID   int64
	Name string
}

// fieldFilter is a custom field the list filters on.
type fieldFilter struct {
	Name, Type, Value string
}

// maxColumns bounds the custom fields shown as columns (all can filter).
const maxColumns = 4

func (h *Handler) usersPage(w http.ResponseWriter, r *http.Request, v *view) {
	q := r.URL.Query()
	d := &usersData{Q: q, Limits: listLimits, Orders: listOrders, Limit: listLimits[0], Order: listOrders[0],
		// Our path and a query re-encoded from its parsed values: safe.
		ExportAction: template.URL(h.base + ExportPath + "?" + q.Encode())}
	v.Title, v.Data = v.Lang.T("users_title"), d
	if n, err := strconv.ParseInt(q.Get("limit"), 10, 64); err == nil && n >= 1 && n <= 1000 {
		d.Limit = n
	}
	for _, o := range listOrders {
		if q.Get("order") == o {
			d.Order = o
		}
	}
	offset, _ := strconv.ParseInt(q.Get("offset"), 10, 64)
	offset = max(offset, 0)
	for _, f := range h.fields {
		if filterable(f.Type) {
			d.Fields = append(d.Fields, fieldFilter{Name: f.Name, Type: string(f.Type), Value: q.Get("cf_" + f.Name)})
		}
		if len(d.Columns) < maxColumns {
			d.Columns = append(d.Columns, f.Name)
		}
	}
	// The groups (for the filter and the names) are read while the list is.
	groupsRead := make(chan struct{})
	go func() { d.Groups, d.GroupName = h.groups(r, v); close(groupsRead) }()
	show := func(status int) { <-groupsRead; h.render(w, status, "users", v) }

	where, problems := h.usersWhere(q, v.Lang)
	if len(problems) > 0 {
		d.FilterErrors = problems
		show(http.StatusBadRequest)
		return
	}
	params := url.Values{"order_by": {d.Order}, "limit": {itoa(d.Limit)}, "offset": {itoa(offset)}, "return_total_count": {"1"}}
	if len(where) > 0 {
		data, err := json.Marshal(map[string]any{"$and": where})
		if err != nil { // never with the values usersWhere makes (FuzzUsersWhere)
			<-groupsRead
			h.fail(w, r, v, http.StatusBadRequest, err.Error())
			return
		}
		params.Set("where", string(data))
	}
	ans := h.call(r, v, http.MethodGet, "/v2.2/miniapp/user_profile/?"+params.Encode(), nil)
	if !ans.OK() {
		v.Error = ans.Message()
		show(ans.Status)
		return
	}
	d.Users, d.Total = ans.List()
	if len(d.Users) > 0 {
		d.From, d.To = offset+1, offset+int64(len(d.Users))
	}
	page := func(off int64) string {
		p := url.Values{}
		for k, vs := range q {
			p[k] = vs
		}
		p.Set("offset", itoa(off))
		return h.base + "/users/?" + p.Encode()
	}
	if offset > 0 {
		d.Prev = page(max(offset-d.Limit, 0))
	}
	if offset+int64(len(d.Users)) < d.Total {
		d.Next = page(offset + d.Limit)
	}
	show(http.StatusOK)
}

// filterable are the custom field types the list filters on.
func filterable(t v1alpha1.CustomFieldType) bool {
	switch t {
	case v1alpha1.FieldString, v1alpha1.FieldInteger, v1alpha1.FieldNumber, v1alpha1.FieldBoolean:
		return true
	}
	return false
}

// usersWhere is the v2.2 where of the filter form (its $and list), or
// what is wrong with the form.
func (h *Handler) usersWhere(q url.Values, l lang) (conds []map[string]any, problems []string) {
	cond := func(field, op string, val any) {
		conds = append(conds, map[string]any{field: map[string]any{op: val}})
	}
	integer := func(key, field string) {
		if s := strings.TrimSpace(q.Get(key)); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				problems = append(problems, l.Tf("err_not_integer", l.T("f_"+key), s))
				return
			}
			cond(field, "$eq", n)
		}
	}
	if s := q.Get("nickname"); s != "" {
		cond("nickname", "$contains", s)
	}
	integer("gender", "gender")
	integer("user_id", "user_id")
	if s := strings.TrimSpace(q.Get("group")); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			cond("user_group", "$contains", n)
		}
	}
	for _, k := range []string{"openid", "unionid"} {
		if s := strings.TrimSpace(q.Get(k)); s != "" {
			cond(k, "$eq", s)
		}
	}
	for _, k := range []string{"created_from", "created_to"} {
		s := strings.TrimSpace(q.Get(k))
		if s == "" {
			continue
		}
		day, err := time.Parse(time.DateOnly, s)
		if err != nil {
			problems = append(problems, l.Tf("err_not_date", l.T("f_"+k), s))
			continue
		}
		if k == "created_from" {
			cond("created_at", "$gte", day.Unix())
		} else {
			cond("created_at", "$lt", day.AddDate(0, 0, 1).Unix())
		}
	}
	for _, f := range h.fields {
		s := strings.TrimSpace(q.Get("cf_" + f.Name))
		if s == "" || !filterable(f.Type) {
			continue
		}
		switch f.Type {
		case v1alpha1.FieldString:
			cond(f.Name, "$contains", s)
		case v1alpha1.FieldInteger:
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				problems = append(problems, l.Tf("err_not_integer", f.Name, s))
				continue
			}
			cond(f.Name, "$eq", n)
		case v1alpha1.FieldNumber:
			n, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsNaN(n) || math.IsInf(n, 0) { // JSON has neither
				problems = append(problems, l.Tf("err_not_number", f.Name, s))
				continue
			}
			cond(f.Name, "$eq", n)
		case v1alpha1.FieldBoolean:
			cond(f.Name, "$eq", s == "true")
		}
	}
	return conds, problems
}

// groups are the tenant's groups (for names and the group filter); a
// failure leaves them out, the page still works.
func (h *Handler) groups(r *http.Request, v *view) ([]group, map[int64]string) {
	ans := h.call(r, v, http.MethodGet, "/v1/user-group/?limit=1000", nil)
	names := map[int64]string{}
	if !ans.OK() {
		return nil, names
	}
	objs, _ := ans.List()
	var gs []group
	for _, o := range objs {
		id, _ := toInt(o["id"])
		name, _ := o["name"].(string)
		gs = append(gs, group{ID: id, Name: name})
		names[id] = name
	}
	return gs, names
}
