package console

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// lang is a language of the console: "en" or "zh". Every text a page
// shows is a message key of messages (i18n_test.go checks both languages
// hold the same keys).
type lang string

const (
	langEN lang = "en"
	langZH lang = "zh"
)

// Tag is the page's html lang.
func (l lang) Tag() string {
	if l == langZH {
		return "zh-CN"
	}
	return "en"
}

// T is the text of key (the key itself when missing, which the tests
// catch).
func (l lang) T(key string) string {
	if s, ok := messages[l][key]; ok {
		return s
	}
	return key
}

// Tf is T with fmt verbs filled.
func (l lang) Tf(key string, args ...any) string { return fmt.Sprintf(l.T(key), args...) }

func parseLang(s string) (lang, bool) {
	switch l := lang(strings.ToLower(s)); l {
	case langEN, langZH:
		return l, true
	}
	return "", false
}

// requestLang is the language chosen with the switch (a cookie), else the
// best of Accept-Language, else English.
func requestLang(r *http.Request) lang {
	if c, err := r.Cookie(langCookie); err == nil {
		if l, ok := parseLang(c.Value); ok {
			return l
		}
	}
	type pref struct {
		l lang
		q float64
	}
	var prefs []pref
	for _, part := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		primary, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(tag)), "-")
		l, ok := parseLang(primary)
		if !ok {
			continue
		}
		q := 1.0
		if v, found := strings.CutPrefix(strings.TrimSpace(params), "q="); found {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		prefs = append(prefs, pref{l, q})
	}
	sort.SliceStable(prefs, func(i, j int) bool { return prefs[i].q > prefs[j].q })
	if len(prefs) > 0 && prefs[0].q > 0 {
		return prefs[0].l
	}
	return langEN
}
