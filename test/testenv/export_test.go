package testenv

// FindBinary is RequireBinary without its -short skip, so the tests of the
// CI rule run under -short too.
var FindBinary = findBinary
