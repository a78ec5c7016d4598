package console

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// The groups (GET groups/): the tenant's groups as a tree, a form to
// create one, and each group's page (GET groups/{id}/) to rename, move
// under another parent, or delete it. Members are added and removed in
// batch from the user list (members.go).

// groupNode is a group with its place in the tree.
type groupNode struct {
	ID, Members int64
	Name        string
	Parent      int64  // 0: top level
	Path        string // "parent / child", for pickers
	Children    []*groupNode
}

// groupTree is every group, as a forest and in depth-first order.
type groupTree struct {
	Roots []*groupNode
	Flat  []*groupNode // depth-first, each after its parent
	ByID  map[int64]*groupNode
}

// maxConsoleGroups bounds the groups a page reads (pages of the API's
// largest page size).
const maxConsoleGroups = 10000

// groupTree reads every group (page by page, within the API's page size).
func (h *Handler) groupTree(r *http.Request, v *view) (*groupTree, Answer) {
	limit := int64(1000)
	if h.o.Spec != nil && h.o.Spec.API.MinApp.MaxLimit > 0 {
		limit = int64(h.o.Spec.API.MinApp.MaxLimit)
	}
	t := &groupTree{ByID: map[int64]*groupNode{}}
	var all []*groupNode
	for offset := int64(0); offset < maxConsoleGroups; offset += limit {
		ans := h.call(r, v, http.MethodGet, fmt.Sprintf("/v1/user-group/?limit=%d&offset=%d", limit, offset), nil)
		if !ans.OK() {
			return nil, ans
		}
		objs, total := ans.List()
		for _, o := range objs {
			g := &groupNode{}
			g.ID, _ = toInt(o["id"])
			g.Members, _ = toInt(o["members"])
			g.Parent, _ = toInt(o["parent"])
			g.Name, _ = o["name"].(string)
			t.ByID[g.ID] = g
			all = append(all, g)
		}
		if int64(len(objs)) < limit || offset+limit >= total {
			break
		}
	}
	sort.Slice(all, func(i, j int) bool {
		return strings.ToLower(all[i].Name) < strings.ToLower(all[j].Name) || (strings.EqualFold(all[i].Name, all[j].Name) && all[i].ID < all[j].ID)
	})
	for _, g := range all {
		if p, ok := t.ByID[g.Parent]; ok && g.Parent != g.ID {
			p.Children = append(p.Children, g)
		} else {
			t.Roots = append(t.Roots, g)
		}
	}
	var walk func(gs []*groupNode, prefix string, depth int)
	walk = func(gs []*groupNode, prefix string, depth int) {
		for _, g := range gs {
			g.Path = prefix + g.Name
			t.Flat = append(t.Flat, g)
			if depth < 64 { // the API bounds nesting at 32
				walk(g.Children, g.Path+" / ", depth+1)
			}
		}
	}
	walk(t.Roots, "", 0)
	return t, Answer{Status: http.StatusOK}
}

// below reports whether group id is g or one of its descendants.
func (g *groupNode) below(id int64) bool {
	if g.ID == id {
		return true
	}
	for _, c := range g.Children {
		if c.below(id) {
			return true
		}
	}
	return false
}

type groupsData struct {
	Tree *groupTree
	Name string // the create form's name, kept after a refusal
}

func (h *Handler) groupsPage(w http.ResponseWriter, r *http.Request, v *view) {
	h.showGroups(w, r, v, http.StatusOK, "")
}

func (h *Handler) showGroups(w http.ResponseWriter, r *http.Request, v *view, status int, typed string) {
	tree, ans := h.groupTree(r, v)
	if !ans.OK() {
		h.fail(w, r, v, ans.Status, ans.Message())
		return
	}
	v.Title, v.Data = v.Lang.T("groups_title"), groupsData{Tree: tree, Name: typed}
	h.render(w, status, "groups", v)
}

// createGroup is POST groups/create: name and an optional parent.
func (h *Handler) createGroup(w http.ResponseWriter, r *http.Request, v *view) {
	body := map[string]any{"name": r.PostFormValue("name")}
	if p, ok := formGroupID(r, "parent"); ok {
		body["parent"] = p
	}
	ans := h.call(r, v, http.MethodPost, "/v1/user-group/", body)
	if !ans.OK() {
		v.Error = ans.Message()
		h.showGroups(w, r, v, ans.Status, r.PostFormValue("name"))
		return
	}
	id, _ := toInt(ans.Object()["id"])
	http.Redirect(w, r, fmt.Sprintf("%s/groups/?done=group_created#group-%d", h.base, id), http.StatusSeeOther)
}

// formGroupID is a form field holding a group id; "" (the top level)
// and anything not an id are not.
func formGroupID(r *http.Request, name string) (int64, bool) {
	id, err := strconv.ParseInt(strings.TrimSpace(r.PostFormValue(name)), 10, 64)
	return id, err == nil && id > 0
}

func pathGroup(r *http.Request) int64 {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return 0
	}
	return id
}

type groupData struct {
	Group   *groupNode
	Parents []*groupNode // where it may move: not itself nor below it
	Name    string       // the rename form's value
}

func (h *Handler) groupPage(w http.ResponseWriter, r *http.Request, v *view) {
	h.showGroup(w, r, v, http.StatusOK, "")
}

// showGroup renders group {id}'s page; typed keeps a refused new name.
func (h *Handler) showGroup(w http.ResponseWriter, r *http.Request, v *view, status int, typed string) {
	tree, ans := h.groupTree(r, v)
	if !ans.OK() {
		h.fail(w, r, v, ans.Status, ans.Message())
		return
	}
	g, ok := tree.ByID[pathGroup(r)]
	if !ok {
		h.fail(w, r, v, http.StatusNotFound, "err_no_group")
		return
	}
	d := groupData{Group: g, Name: g.Name}
	if typed != "" {
		d.Name = typed
	}
	for _, p := range tree.Flat {
		if !g.below(p.ID) {
			d.Parents = append(d.Parents, p)
		}
	}
	v.Title, v.Data = v.Lang.Tf("group_title", g.Name), d
	h.render(w, status, "group", v)
}

// groupActions are the POSTs of a group's page, each one API request.
func (h *Handler) groupActions() map[string]func(http.ResponseWriter, *http.Request, *view) {
	return map[string]func(http.ResponseWriter, *http.Request, *view){
		"rename": func(w http.ResponseWriter, r *http.Request, v *view) {
			name := r.PostFormValue("name")
			h.groupDone(w, r, v, h.call(r, v, http.MethodPut, fmt.Sprintf("/v1/user-group/%d/", pathGroup(r)), map[string]any{"name": name}), "group_renamed", name)
		},
		"move": func(w http.ResponseWriter, r *http.Request, v *view) {
			var parent any // null: the top level
			if p, ok := formGroupID(r, "parent"); ok {
				parent = p
			}
			h.groupDone(w, r, v, h.call(r, v, http.MethodPut, fmt.Sprintf("/v1/user-group/%d/", pathGroup(r)), map[string]any{"parent": parent}), "group_moved", "")
		},
		"delete": func(w http.ResponseWriter, r *http.Request, v *view) {
			if r.PostFormValue("confirm") != "yes" {
				v.Error = v.Lang.T("err_confirm_group_delete")
				h.showGroup(w, r, v, http.StatusBadRequest, "")
				return
			}
			ans := h.call(r, v, http.MethodDelete, fmt.Sprintf("/v1/user-group/%d/", pathGroup(r)), nil)
			if !ans.OK() {
				h.groupDone(w, r, v, ans, "", "")
				return
			}
			http.Redirect(w, r, h.base+"/groups/?done=group_deleted", http.StatusSeeOther)
		},
	}
}

// groupDone goes back to the group's page with done, or shows it again
// with the API's refusal.
func (h *Handler) groupDone(w http.ResponseWriter, r *http.Request, v *view, ans Answer, done, typed string) {
	if ans.OK() {
		http.Redirect(w, r, fmt.Sprintf("%s/groups/%d/?done=%s", h.base, pathGroup(r), done), http.StatusSeeOther)
		return
	}
	if ans.Status == http.StatusNotFound {
		h.fail(w, r, v, ans.Status, "err_no_group")
		return
	}
	v.Error = ans.Message()
	h.showGroup(w, r, v, ans.Status, typed)
}
