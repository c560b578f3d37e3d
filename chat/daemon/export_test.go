package daemon

// CodeNames are the stable error names by code, for the tests that hold API.md to them.
var CodeNames = codeNames
