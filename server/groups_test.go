package server_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
)

const groupsPath = "/userve/v1/user-group/"

func groupIDs(t *testing.T, r response) []int64 {
	t.Helper()
	out := []int64{}
	for _, o := range r.body["objects"].([]any) {
		out = append(out, num(t, o.(map[string]any)["id"]))
	}
	return out
}

func TestGroupsCRUD(t *testing.T) {
	e := newEnv(t)
	r := e.do("POST", groupsPath, map[string]any{"name": "staff"}).want(t, http.StatusCreated)
	staff := num(t, r.body["id"])
	if r.body["name"] != "staff" || num(t, r.body["members"]) != 0 || r.body["parent"] != nil {
		t.Fatalf("created %s", r.raw)
	}
	r = e.do("POST", "/oserve/v1/user-group/", map[string]any{"name": "admins", "parent": staff}).want(t, 201)
	admins := num(t, r.body["id"])
	if num(t, r.body["parent"]) != staff {
		t.Fatalf("child %s", r.raw)
	}
	other := num(t, e.do("POST", groupsPath, map[string]any{"name": "other"}).want(t, 201).body["id"])

	e.do("POST", groupsPath, map[string]any{"name": "x", "parent": 99}).wantError(t, 400, "no group with id 99")
	e.do("POST", groupsPath, map[string]any{}).wantError(t, 400, "name is required")
	e.do("POST", groupsPath, map[string]any{"name": "  "}).wantError(t, 400, "name must not be empty")
	e.do("POST", groupsPath, map[string]any{"name": 5}).wantError(t, 400, `"name"`)
	e.do("POST", groupsPath, map[string]any{"name": "x", "colour": "red"}).wantError(t, 400, `unknown field "colour"`)
	e.do("POST", groupsPath, map[string]any{"name": "x", "parent": "1"}).wantError(t, 400, "parent")

	// List: all, by parent, paged.
	r = e.do("GET", groupsPath, nil).want(t, 200)
	if got := groupIDs(t, r); !slices.Equal(got, []int64{staff, admins, other}) || num(t, meta(t, r)["total_count"]) != 3 {
		t.Fatalf("list %s", r.raw)
	}
	r = e.do("GET", fmt.Sprintf("%s?parent_id=%d", groupsPath, staff), nil).want(t, 200)
	if got := groupIDs(t, r); !slices.Equal(got, []int64{admins}) {
		t.Fatalf("children %s", r.raw)
	}
	r = e.do("GET", groupsPath+"?limit=1&offset=1", nil).want(t, 200)
	if got := groupIDs(t, r); !slices.Equal(got, []int64{admins}) || meta(t, r)["next"] != groupsPath+"?limit=1&offset=2" ||
		meta(t, r)["previous"] != groupsPath+"?limit=1&offset=0" {
		t.Fatalf("page %s", r.raw)
	}
	e.do("GET", groupsPath+"?parent=1", nil).wantError(t, 400, `"parent"`)
	e.do("GET", groupsPath+"?parent_id=x", nil).wantError(t, 400, `"parent_id"`)

	// Update: rename, move, refuse cycles.
	r = e.do("PUT", fmt.Sprintf("%s%d/", groupsPath, admins), map[string]any{"name": "root"}).want(t, 200)
	if r.body["name"] != "root" || num(t, r.body["parent"]) != staff {
		t.Fatalf("renamed %s", r.raw)
	}
	e.do("PUT", fmt.Sprintf("%s%d/", groupsPath, staff), map[string]any{"parent": admins}).wantError(t, 400, "own ancestor")
	e.do("PUT", fmt.Sprintf("%s%d/", groupsPath, staff), map[string]any{"parent": staff}).wantError(t, 400, "own ancestor")
	e.do("PUT", fmt.Sprintf("%s%d/", groupsPath, staff), map[string]any{"parent": 404}).wantError(t, 400, "no group with id 404")
	e.do("PUT", fmt.Sprintf("%s%d/", groupsPath, staff), map[string]any{}).wantError(t, 400, "nothing to update")
	e.do("PUT", groupsPath+"404/", map[string]any{"name": "x"}).wantError(t, 404, "group 404 not found")
	r = e.do("PUT", fmt.Sprintf("%s%d/", groupsPath, admins), map[string]any{"parent": nil}).want(t, 200)
	if r.body["parent"] != nil || r.body["name"] != "root" {
		t.Fatalf("moved to top %s", r.raw)
	}

	// Get and delete.
	e.do("GET", fmt.Sprintf("%s%d/", groupsPath, other), nil).want(t, 200)
	e.do("GET", groupsPath+"404/", nil).wantError(t, 404)
	e.do("DELETE", fmt.Sprintf("%s%d/", groupsPath, other), nil).want(t, 204)
	e.do("DELETE", fmt.Sprintf("%s%d/", groupsPath, other), nil).wantError(t, 404)

	// Bulk delete: unknown ids are ignored.
	e.do("DELETE", fmt.Sprintf("%s?id__in=%d,%d,999", groupsPath, staff, admins), nil).want(t, 204)
	if r := e.do("GET", groupsPath, nil).want(t, 200); len(groupIDs(t, r)) != 0 {
		t.Fatalf("after bulk delete %s", r.raw)
	}
	e.do("DELETE", groupsPath, nil).wantError(t, 400, `"id__in"`)
	e.do("DELETE", groupsPath+"?id__in=a,b", nil).wantError(t, 400, `"id__in"`)
	e.do("DELETE", groupsPath+"?id__in=1&force=1", nil).wantError(t, 400, `"force"`)
}

func TestMembership(t *testing.T) {
	e := newEnv(t)
	seedUsers(t, e) // users 1-4, groups 1 {1,2} and 2 {2,3}
	member := "/userve/v1/miniapp/group/membership/"
	e.do("PATCH", member, []map[string]any{
		{"op": "add", "path": "/membership", "users": []int{3, 4}, "groups": []int{1}},
		{"op": "remove", "path": "/membership", "users": []int{2, 4}, "groups": []int{2}},
	}).want(t, http.StatusNoContent)
	r := e.do("GET", v20+"?group__in=1&order_by=user_id", nil).want(t, 200)
	if got := ids(t, r); !slices.Equal(got, []int64{1, 2, 3, 4}) {
		t.Fatalf("group 1 members %v", got)
	}
	r = e.do("GET", v20+"?group__in=2", nil).want(t, 200)
	if got := ids(t, r); !slices.Equal(got, []int64{3}) {
		t.Fatalf("group 2 members %v", got)
	}
	if n := num(t, e.do("GET", groupsPath+"1/", nil).want(t, 200).body["members"]); n != 4 {
		t.Fatalf("group 1 members count %d", n)
	}
	// Adding twice changes nothing.
	e.do("PATCH", "/oserve/v1/miniapp/group/membership/", `[{"op":"add","path":"/membership","users":[3],"groups":[1,2]}]`).want(t, 204)
	if got := e.do("GET", v20+"3/", nil).want(t, 200).body["user_group"]; fmt.Sprint(got) != "[2 1]" {
		t.Fatalf("user 3 groups %v", got)
	}

	for body, fragment := range map[string]string{
		`[{"op":"move","path":"/membership","users":[1],"groups":[1]}]`:      `op "move"`,
		`[{"op":"add","path":"/members","users":[1],"groups":[1]}]`:          `path "/members"`,
		`[{"op":"add","path":"/membership","users":[],"groups":[1]}]`:        "users must be a non-empty array",
		`[{"op":"add","path":"/membership","users":[1]}]`:                    "groups must be a non-empty array",
		`[{"op":"add","path":"/membership","users":[0],"groups":[1]}]`:       "0 is not an id",
		`[{"op":"add","path":"/membership","users":["1"],"groups":[1]}]`:     `"users"`,
		`[{"op":"add","path":"/membership","users":[1],"groups":[1],"x":1}]`: `unknown field "x"`,
		`[{"op":"add","path":"/membership","users":[1],"groups":[9]}]`:       "no group with id 9",
		`[{"op":"add","path":"/membership","users":[1,98,99],"groups":[1]}]`: "no user with id 98, 99",
		`{"op":"add"}`: "must be a JSON array",
		`[]`:           "non-empty JSON array",
	} {
		e.do("PATCH", member, body).wantError(t, 400, fragment)
	}
	// A refused request changed nothing.
	if got := ids(t, e.do("GET", v20+"?group__in=2", nil).want(t, 200)); !slices.Equal(got, []int64{3}) {
		t.Fatalf("group 2 members after refused requests %v", got)
	}
	// Deleting a group takes it out of every profile.
	e.do("DELETE", groupsPath+"1/", nil).want(t, 204)
	if got := ids(t, e.do("GET", v20+"?group__in=1", nil).want(t, 200)); len(got) != 0 {
		t.Fatalf("profiles still in deleted group: %v", got)
	}
}
