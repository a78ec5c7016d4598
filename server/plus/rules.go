package plus

// The account rules of this dialect, for the other end-user dialect (the
// MinApp SDK's, server/hserve): a user made there must log in here, so
// names, phones, e-mails and passwords follow the same rules, written once
// in validate.go.

// NameProblem says why name is not an acceptable user name, or "".
func NameProblem(name string) string { return nameProblem(name) }

// PasswordProblem says why p is not an acceptable new password, or "".
func PasswordProblem(p string) string { return passwordProblem(p) }

// LooksLikePhone reports whether s is a phone number as users are found by.
func LooksLikePhone(s string) bool { return looksLikePhone(s) }

// NormalizeEmail is the address in lower case, or "" when s is not one.
func NormalizeEmail(s string) string { return normalizeEmail(s) }
