package approval

import (
	"unicode"
	"unicode/utf8"
)

// CheckFreeText is the one rule for free text people write into the
// ledger (a request's reason, a review's body, a revocation's reason):
// valid UTF-8, at most maxLen characters, and no character that would act
// on a terminal or reorder text instead of showing itself: no control
// characters but newline and tab (no escape sequences, no BEL), and no
// bidirectional controls (U+061C, U+200E, U+200F, U+202A-U+202E,
// U+2066-U+2069), which make text read differently from what it is. The
// error is an *Error of kind ErrInvalid (400) with code "invalid_"+what.
func CheckFreeText(what, s string, maxLen int) error {
	if !utf8.ValidString(s) {
		return newErr(ErrInvalid, "invalid_"+what, "%s is not valid UTF-8", what)
	}
	if utf8.RuneCountInString(s) > maxLen {
		return newErr(ErrInvalid, "invalid_"+what, "%s is longer than %d characters", what, maxLen)
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return newErr(ErrInvalid, "invalid_"+what, "%s contains control characters (%U); write it as plain text", what, r)
		}
		if unicode.Is(unicode.Bidi_Control, r) {
			return newErr(ErrInvalid, "invalid_"+what, "%s contains a bidirectional text control (%U), which makes text display differently from what it says; write it without one", what, r)
		}
	}
	return nil
}
