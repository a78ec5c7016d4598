package seed

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

const sample = 20000

func TestProfilesAreDeterministic(t *testing.T) {
	a := New(Config{Profiles: 10, Groups: 50, Seed: 42})
	b := New(Config{Profiles: 10, Groups: 50, Seed: 42})
	for id := int64(1); id <= 10; id++ {
		if !reflect.DeepEqual(a.Profile(id), b.Profile(id)) {
			t.Fatalf("profile %d differs between two generators with one seed", id)
		}
	}
	c := New(Config{Profiles: 10, Groups: 50, Seed: 43})
	if reflect.DeepEqual(a.Profile(5), c.Profile(5)) {
		t.Error("another seed gave the same profile")
	}
}

func TestUniqueFieldsAreUnique(t *testing.T) {
	g := New(Config{Profiles: sample, Groups: 50, LoginUsers: 200, Seed: 1, PasswordHash: "$2a$10$x"})
	seen := map[string]map[string]int64{"openid": {}, "unionid": {}, "username": {}, "email": {}, "phone": {}}
	for id := int64(1); id <= sample; id++ {
		p := g.Profile(id)
		for field, v := range map[string]string{"openid": p.OpenID, "unionid": p.UnionID,
			"username": p.Username, "email": p.Email, "phone": p.Phone} {
			if v == "" {
				continue
			}
			if other, dup := seen[field][v]; dup {
				t.Fatalf("%s %q shared by users %d and %d", field, v, other, id)
			}
			seen[field][v] = id
		}
		if len(p.OpenID) != 28 {
			t.Fatalf("openid %q is %d chars, want 28", p.OpenID, len(p.OpenID))
		}
	}
	if n := len(seen["unionid"]); n < sample*6/10 || n > sample*8/10 {
		t.Errorf("%d of %d have a unionid, want ~70%%", n, sample)
	}
}

func TestUsernamesFollowTheNameRule(t *testing.T) {
	g := New(Config{Profiles: sample, LoginUsers: 200, Seed: 1})
	for id := int64(1); id <= sample; id++ {
		name := g.Profile(id).Username
		if name == "" {
			continue
		}
		// ASCII counts half a display unit: 2..12 units is 4..24 ASCII characters.
		if len(name) < 4 || len(name) > 24 || name[0] >= '0' && name[0] <= '9' {
			t.Fatalf("user %d: name %q breaks the 2..12 display units / no leading digit rule", id, name)
		}
	}
}

func TestLoginUsersHaveThePassword(t *testing.T) {
	g := New(Config{Profiles: 1000, LoginUsers: 200, Seed: 1, PasswordHash: "HASH"})
	for _, id := range []int64{1, 200} {
		p := g.Profile(id)
		if p.Username != LoginUsername(id) || p.PasswordHash != "HASH" {
			t.Errorf("login user %d: %q %q", id, p.Username, p.PasswordHash)
		}
	}
	if p := g.Profile(201); p.PasswordHash != "" || p.Username == LoginUsername(201) {
		t.Errorf("user 201 is not a login user: %+v", p)
	}
}

func TestDistributions(t *testing.T) {
	g := New(Config{Profiles: sample, Groups: 50, Seed: 7})
	var tom, grouped, vip int
	genders := [3]int{}
	recent := 0
	for id := int64(1); id <= sample; id++ {
		p := g.Profile(id)
		if strings.Contains(p.Nickname, "Tom") {
			tom++
		}
		if !utf8.ValidString(p.Nickname) || p.Nickname == "" {
			t.Fatalf("bad nickname %q", p.Nickname)
		}
		genders[p.Gender]++
		if len(p.Groups) > 0 {
			grouped++
		}
		for _, gid := range p.Groups {
			if gid < 1 || gid > 50 {
				t.Fatalf("group %d out of 1..50", gid)
			}
		}
		if p.Created.Before(FirstSignup) || !p.Created.Before(LastSignup) || p.Updated.Before(p.Created) {
			t.Fatalf("times out of range: %v %v", p.Created, p.Updated)
		}
		if p.Created.Year() >= 2020 {
			recent++
		}
		if p.Custom["vip"] == true {
			vip++
		}
		if lv := p.Custom["level"].(int64); lv < 0 || lv > 10 {
			t.Fatalf("level %d", lv)
		}
	}
	within := func(name string, got int, lo, hi float64) {
		t.Helper()
		if f := float64(got) / sample; f < lo || f > hi {
			t.Errorf("%s: %.3f of users, want %.2f..%.2f", name, f, lo, hi)
		}
	}
	within("nickname contains Tom", tom, 0.04, 0.065)
	within("gender 0", genders[0], 0.10, 0.14)
	within("gender 1", genders[1], 0.44, 0.48)
	within("gender 2", genders[2], 0.40, 0.44)
	within("in a group", grouped, 0.32, 0.38)
	within("vip", vip, 0.05, 0.07)
	// Linear growth: the later half of the decade holds most sign-ups.
	within("signed up 2020 or later", recent, 0.6, 0.8)
}

func TestGroupsFormAShallowTree(t *testing.T) {
	g := New(Config{Groups: 50, Seed: 1})
	for id := int64(1); id <= 50; id++ {
		gr := g.Group(id)
		if gr.ID != id || gr.Name == "" {
			t.Fatalf("group %d: %+v", id, gr)
		}
		if gr.Parent != nil && (*gr.Parent < 1 || *gr.Parent > 10 || id <= 10) {
			t.Fatalf("group %d parent %d", id, *gr.Parent)
		}
	}
}

func TestWalletDocsKeepTheLedgerInvariant(t *testing.T) {
	g := New(Config{Profiles: 100, Seed: 3})
	v0, v1, e := g.walletDocs(10, 7)
	if v0.Seq != 0 || v0.Wallet != 0 || v1.Seq != 1 || v0.UserID != 10 || v1.UserID != 10 {
		t.Fatalf("versions: %+v %+v", v0, v1)
	}
	if v1.Wallet != e.Amount || v1.Totals.WalletIncome != e.Amount || e.State != "completed" {
		t.Errorf("balance %d must equal the completed credit %d", v1.Wallet, e.Amount)
	}
	if v1.Step != "7:a" || e.ID != 7 || e.Key == "" {
		t.Errorf("step %q for entry %d (key %q)", v1.Step, e.ID, e.Key)
	}
	if v0.ID != "10:0" || v1.ID != "10:1" {
		t.Errorf("version ids %q %q", v0.ID, v1.ID)
	}
}
