// Package seed generates the benchmark tenant's data deterministically and
// bulk-inserts it through the Go driver in the store's own document shape
// (store.Profile and store.Group), so the server reads it as if it had
// written it.
//
// Distributions, chosen to look like a mini-program's user base:
//   - nicknames from common given names with decorations, ~30% Chinese;
//     about 5% contain "Tom" (Tom, Tommy, Tomas, Tomoko...; "Atom" and "tom" do not);
//   - gender 0/1/2 at 12/46/42%;
//   - created_at from 2015 to mid-2025, denser in recent years (linear
//     growth), updated_at after it;
//   - every user has a unique openid, 70% a unique unionid;
//   - 35% belong to 1-3 of the 50 groups, small ids more popular;
//   - custom fields: level (integer 0-10, geometric), vip (boolean, 6%),
//     channel (string);
//   - 40% registered through the app: a unique username, and e-mail
//     and/or phone; the first LoginUsers have a known password.
package seed

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"userve.dev/userve/server/store"
)

// Config of a data set.
type Config struct {
	Profiles   int
	Groups     int
	LoginUsers int    // ids 1..LoginUsers get LoginUsername(i) and PasswordHash
	Seed       uint64 // same seed, same data
	// PasswordHash is the stored hash of LoginPassword, computed once by
	// the caller (bcrypt is slow; every login user shares it).
	PasswordHash string
}

// LoginPassword is the password of every login user.
const LoginPassword = "bench-password-1"

// CustomFields are the tenant's custom profile fields the data uses; the
// benchmark's manifest declares them.
var CustomFields = []struct{ Name, Type string }{
	{"level", "integer"},
	{"vip", "boolean"},
	{"channel", "string"},
}

// Range of created_at.
var (
	FirstSignup = time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)
	LastSignup  = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
)

var (
	westernNames = []string{"Tom", "Anna", "James", "Mary", "John", "Linda", "Michael", "Sarah", "David", "Emma",
		"Chris", "Olivia", "Daniel", "Sophia", "Kevin", "Grace", "Jason", "Lucy", "Eric", "Amy",
		"Leo", "Mia", "Ryan", "Zoe", "Alex", "Ivy", "Sam", "Ella", "Jack", "Lily", "Max", "Nina"}
	// Names containing "Tom" other than "Tom" itself, for the contains filter.
	tomNames     = []string{"Tommy", "Tomas", "Tomoko", "Atom", "Tomasz", "Tomek"}
	chineseNames = []string{"小明", "小红", "阿杰", "晓燕", "子涵", "浩然", "欣怡", "宇轩", "梓萱", "俊杰",
		"雨桐", "一诺", "思远", "佳琪", "志强", "婷婷"}
	decorations = []string{"", "", "", "_", ".", "99", "2020", "_cn", "酱", " ❤", "~"}
	cities      = []struct{ city, province string }{
		{"Shanghai", "Shanghai"}, {"Beijing", "Beijing"}, {"Guangzhou", "Guangdong"}, {"Shenzhen", "Guangdong"},
		{"Hangzhou", "Zhejiang"}, {"Chengdu", "Sichuan"}, {"Wuhan", "Hubei"}, {"Nanjing", "Jiangsu"},
		{"Xi'an", "Shaanxi"}, {"Suzhou", "Jiangsu"}, {"Chongqing", "Chongqing"}, {"Tianjin", "Tianjin"},
	}
	channels = []string{"wechat", "wechat", "wechat", "share", "ad", "search", "qr"}
)

// Gen produces the data set one record at a time.
type Gen struct{ cfg Config }

// New returns a generator.
func New(cfg Config) *Gen { return &Gen{cfg: cfg} }

// rng is a generator private to one record, so that any record can be built
// alone and batches can be built in parallel.
func (g *Gen) rng(kind, i uint64) *rand.Rand {
	return rand.New(rand.NewPCG(g.cfg.Seed^kind*0x9e3779b97f4a7c15, i))
}

// Profile is user id (1-based).
func (g *Gen) Profile(id int64) *store.Profile {
	r := g.rng(1, uint64(id))
	p := &store.Profile{ID: id}
	p.Nickname = nickname(r)
	switch x := r.Float64(); {
	case x < 0.12:
		p.Gender = 0
	case x < 0.58:
		p.Gender = 1
	default:
		p.Gender = 2
	}
	p.Created = signupTime(r.Float64())
	p.Updated = p.Created.Add(time.Duration(r.Float64() * float64(LastSignup.Sub(p.Created)))).Truncate(time.Second)
	c := cities[r.IntN(len(cities))]
	p.City, p.Province, p.Country = c.city, c.province, "China"
	p.Language = "zh_CN"
	if r.Float64() < 0.15 {
		p.Language = "en"
	}
	p.Avatar = fmt.Sprintf("https://cdn.example.com/avatars/%d.jpg", r.IntN(5000))
	p.OpenID = OpenID(id)
	if r.Float64() < 0.70 {
		p.UnionID = "u" + uniqueToken(id, r, 27)
	}
	p.Groups = []int64{}
	if g.cfg.Groups > 0 && r.Float64() < 0.35 {
		n := 1 + r.IntN(3)
		seen := map[int64]bool{}
		for len(p.Groups) < n {
			// Squaring a uniform variate favours small group ids.
			gid := 1 + int64(math.Floor(math.Pow(r.Float64(), 2)*float64(g.cfg.Groups)))
			if !seen[gid] {
				seen[gid] = true
				p.Groups = append(p.Groups, gid)
			}
		}
	}
	level := int64(0)
	for level < 10 && r.Float64() < 0.55 {
		level++
	}
	p.Custom = map[string]any{
		"level":   level,
		"vip":     r.Float64() < 0.06,
		"channel": channels[r.IntN(len(channels))],
	}
	p.FollowersCount = int64(math.Floor(math.Pow(r.Float64(), 4) * 500))
	p.FollowingsCount = int64(r.IntN(80))
	if int(id) <= g.cfg.LoginUsers {
		p.Username = LoginUsername(id)
		p.PasswordHash = g.cfg.PasswordHash
		p.Email = fmt.Sprintf("login%d@bench.example.com", id)
		p.EmailVerified = true
	} else if r.Float64() < 0.40 {
		p.Username = Username(id)
		if r.Float64() < 0.6 {
			p.Email = fmt.Sprintf("user%d@example.com", id)
			p.EmailVerified = r.Float64() < 0.8
		}
		if r.Float64() < 0.7 {
			p.Phone = strconv.FormatInt(13000000000+id, 10)
			p.PhoneVerified = true
		}
		p.Bio = "hello from " + p.City
		p.Location = p.Province + " " + p.City
	}
	return p
}

// Group is group id (1-based); parents form a shallow tree.
func (g *Gen) Group(id int64) *store.Group {
	r := g.rng(2, uint64(id))
	gr := &store.Group{ID: id, Name: fmt.Sprintf("group-%02d", id),
		Created: signupTime(r.Float64())}
	if id > 10 {
		parent := 1 + int64(r.IntN(10))
		gr.Parent = &parent
	}
	return gr
}

// OpenID of a user: 28 characters like WeChat's, unique by construction.
func OpenID(id int64) string {
	return "o" + uniqueToken(id, rand.New(rand.NewPCG(uint64(id), 7)), 27)
}

// LoginUsername is the name of login user id (1..LoginUsers).
func LoginUsername(id int64) string { return "bench_login_" + strconv.FormatInt(id, 10) }

// Username of an app-registered user: ASCII, unique (it embeds the id in
// base 36), at most 24 ASCII characters (12 display units), starting with a
// letter.
func Username(id int64) string { return "u_" + strconv.FormatInt(id, 36) + "x" }

// uniqueToken is n URL-safe characters: the id in base 36, padded with
// random characters; the id part makes it unique.
func uniqueToken(id int64, r *rand.Rand, n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	idPart := strconv.FormatInt(id, 36)
	var b strings.Builder
	b.Grow(n)
	for b.Len() < n-len(idPart)-1 {
		b.WriteByte(alphabet[r.IntN(len(alphabet))])
	}
	b.WriteByte('Z') // separator: the base-36 id never holds an upper-case Z
	b.WriteString(idPart)
	return b.String()
}

func nickname(r *rand.Rand) string {
	x := r.Float64()
	var base string
	switch {
	case x < 0.025:
		base = "Tom"
	case x < 0.04:
		base = tomNames[r.IntN(len(tomNames))]
	case x < 0.70:
		base = westernNames[r.IntN(len(westernNames))]
		if r.Float64() < 0.3 {
			base = strings.ToLower(base)
		}
	default:
		base = chineseNames[r.IntN(len(chineseNames))]
	}
	return base + decorations[r.IntN(len(decorations))]
}

// signupTime maps u in [0,1) to a time whose density grows linearly from
// FirstSignup to LastSignup (sqrt inverts the linear CDF).
func signupTime(u float64) time.Time {
	span := LastSignup.Sub(FirstSignup)
	return FirstSignup.Add(time.Duration(math.Sqrt(u) * float64(span))).Truncate(time.Second)
}
