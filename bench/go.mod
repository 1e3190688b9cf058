module github.com/tokenward/tokenward/bench

go 1.26.0

replace github.com/tokenward/tokenward => ../

require (
	github.com/auth0/go-jwt-middleware/v2 v2.3.1
	github.com/golang-jwt/jwt/v5 v5.3.1
	github.com/tokenward/tokenward v0.0.0-00010101000000-000000000000
)

require (
	github.com/MicahParks/jwkset v0.11.3 // indirect
	github.com/coreos/go-oidc/v3 v3.21.0 // indirect
	github.com/go-jose/go-jose/v4 v4.1.4 // indirect
	golang.org/x/crypto v0.45.0 // indirect
	golang.org/x/oauth2 v0.37.0 // indirect
	golang.org/x/time v0.15.0 // indirect
	gopkg.in/go-jose/go-jose.v2 v2.6.3 // indirect
)
