package daemon

// CodeNames are the stable error names by code, for the tests that hold API.md to them.
var CodeNames = codeNames

// ErrorFor is errorFor, for the table of what each of package chat's errors maps to.
var ErrorFor = errorFor

// EventNotification is eventNotification, for the test that holds API.md's example
// notifications to what the owner sends.
var EventNotification = eventNotification
