module pfschat/ratchet/peerbench

go 1.26.8

require (
	go.mau.fi/libsignal v0.2.1
	maunium.net/go/mautrix v0.32.0
	pfschat v0.0.0
)

require (
	filippo.io/edwards25519 v1.2.0 // indirect
	go.mau.fi/util v0.11.0 // indirect
	golang.org/x/crypto v0.59.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

replace pfschat => ../..
