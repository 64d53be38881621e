module github.com/natpass/natpass/interop

go 1.26.0

require (
	github.com/flynn/noise v1.1.0
	github.com/natpass/natpass v0.0.0
	golang.org/x/crypto v0.58.0
)

require golang.org/x/sys v0.50.0 // indirect

replace github.com/natpass/natpass => ../
