package minapp

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"userve.dev/userve/server/store"
)

// Limits are a list's page sizes (spec.api.minapp).
type Limits struct {
	Default int64
	Max     int64
}

// maxOffset keeps offset+limit far from overflow and skips sane.
const maxOffset = 1<<31 - 1

// ListQuery is a parsed profile list request.
type ListQuery struct {
	Filter     store.Filter
	Sort       []store.SortKey
	Limit      int64 // effective: defaulted and clamped
	Offset     int64
	TotalCount bool // meta.total_count wanted
}

// ParamError is a bad query parameter; the message names it.
type ParamError struct {
	Param string
	Msg   string
}

func (e *ParamError) Error() string { return fmt.Sprintf("query parameter %q: %s", e.Param, e.Msg) }

func paramErr(param, format string, args ...any) error {
	return &ParamError{Param: param, Msg: fmt.Sprintf(format, args...)}
}

// v20Sorts are the v2.0 order_by values.
var v20Sorts = map[string]store.SortKey{
	"created_at":  {Field: store.FieldCreatedAt},
	"-created_at": {Field: store.FieldCreatedAt, Desc: true},
	"user_id":     {Field: store.FieldID},
	"-user_id":    {Field: store.FieldID, Desc: true},
}

// ParseListV20 reads the v2.0 list parameters (the seed's): filters,
// order_by, limit and offset. Unknown, repeated, empty or malformed
// parameters are errors naming the parameter.
func ParseListV20(q url.Values, lim Limits) (ListQuery, error) {
	lq := ListQuery{TotalCount: true}
	var conds []store.Filter
	for _, name := range sortedKeys(q) {
		values := q[name]
		if len(values) != 1 {
			return lq, paramErr(name, "given %d times; give it once", len(values))
		}
		v := values[0]
		if v == "" {
			return lq, paramErr(name, "empty value")
		}
		if !utf8.ValidString(v) {
			// MongoDB refuses such strings (and regexes): a 400, not a 500.
			return lq, paramErr(name, "value is not valid UTF-8")
		}
		switch name {
		case "created_at__gte", "created_at__lte", "created_at__gt", "created_at__lt":
			i, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return lq, paramErr(name, "%q is not a unix timestamp in seconds", v)
			}
			t, err := unixTime(i)
			if err != nil {
				return lq, paramErr(name, "%v", err)
			}
			op := map[string]store.Op{"gte": store.OpGte, "lte": store.OpLte, "gt": store.OpGt, "lt": store.OpLt}[strings.TrimPrefix(name, "created_at__")]
			conds = append(conds, store.Where(store.FieldCreatedAt, op, t))
		case "gender":
			g, err := strconv.ParseInt(v, 10, 64)
			if err != nil || g < 0 || g > 2 {
				return lq, paramErr(name, "%q must be 0 (unknown), 1 (male) or 2 (female)", v)
			}
			conds = append(conds, store.Where(store.FieldGender, store.OpEq, g))
		case "group__in":
			ids, err := parseIDList(v)
			if err != nil {
				return lq, paramErr(name, "%v", err)
			}
			conds = append(conds, store.Where(store.FieldGroups, store.OpIn, ids))
		case "nickname":
			conds = append(conds, store.Where(store.FieldNickname, store.OpEq, v))
		case "nickname__contains":
			conds = append(conds, store.Where(store.FieldNickname, store.OpContains, v))
		case "openid":
			conds = append(conds, store.Where(store.FieldOpenID, store.OpEq, v))
		case "unionid":
			conds = append(conds, store.Where(store.FieldUnionID, store.OpEq, v))
		case "user_id":
			id, err := strconv.ParseInt(v, 10, 64)
			if err != nil || id < 1 {
				return lq, paramErr(name, "%q is not a user id (a positive integer)", v)
			}
			conds = append(conds, store.Where(store.FieldID, store.OpEq, id))
		case "order_by":
			key, ok := v20Sorts[v]
			if !ok {
				return lq, paramErr(name, "%q is not supported; use created_at, -created_at, user_id or -user_id", v)
			}
			lq.Sort = []store.SortKey{key}
		case "limit", "offset":
			if err := parsePaging(&lq, name, v, lim); err != nil {
				return lq, err
			}
		default:
			return lq, paramErr(name, "unknown parameter; v2.0 accepts created_at__gte, created_at__lte, created_at__gt, created_at__lt, gender, group__in, nickname, nickname__contains, openid, unionid, user_id, order_by, limit and offset")
		}
	}
	if lq.Limit == 0 {
		lq.Limit = lim.Default
	}
	lq.Filter = store.All(conds...)
	return lq, nil
}

// parsePaging reads limit (clamped to the maximum) or offset.
func parsePaging(lq *ListQuery, name, v string, lim Limits) error {
	n, err := strconv.ParseInt(v, 10, 64)
	if name == "limit" {
		if err != nil || n < 1 {
			// Out-of-range big numbers are clamped like any other big limit.
			if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange && !strings.HasPrefix(v, "-") {
				lq.Limit = lim.Max
				return nil
			}
			return paramErr(name, "%q is not a positive integer", v)
		}
		lq.Limit = min(n, lim.Max)
		return nil
	}
	if err != nil || n < 0 || n > maxOffset {
		return paramErr(name, "%q is not an integer between 0 and %d", v, maxOffset)
	}
	lq.Offset = n
	return nil
}

// parseIDList reads "258,360".
func parseIDList(v string) ([]any, error) {
	parts := strings.Split(v, ",")
	if len(parts) > store.MaxInValues {
		return nil, fmt.Errorf("more than %d ids", store.MaxInValues)
	}
	ids := make([]any, 0, len(parts))
	for _, p := range parts {
		id, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
		if err != nil || id < 1 {
			return nil, fmt.Errorf("%q is not a comma-separated list of ids (positive integers)", v)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// pageLinks are meta.next and meta.previous: the request's path with its
// query re-encoded and offset moved by one page; nil at either end.
func pageLinks(u *url.URL, limit, offset int64, more bool) (next, previous *string) {
	link := func(off int64) *string {
		q := u.Query()
		q.Set("limit", strconv.FormatInt(limit, 10))
		q.Set("offset", strconv.FormatInt(off, 10))
		s := u.EscapedPath() + "?" + q.Encode()
		return &s
	}
	if more {
		next = link(offset + limit)
	}
	if offset > 0 {
		previous = link(max(0, offset-limit))
	}
	return next, previous
}
