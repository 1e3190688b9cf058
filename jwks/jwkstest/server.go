package jwkstest

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"time"
)

const (
	discoveryPath = ".well-known/openid-configuration"
	jwksPath      = ".well-known/jwks.json"
)

// An endpoint is one thing the issuer serves, with its own request counter.
// A new endpoint (userinfo, introspection) gets a constant here and a line
// in routes.
type endpoint int

const (
	endpointDiscovery endpoint = iota
	endpointJWKS
	endpointUserInfo
	endpointIntrospection
	numEndpoints
)

// garbageBody is what the JWKS, /userinfo and introspection answer under
// SetGarbage: what a proxy or captive portal in front of an issuer sends with
// a 200.
const garbageBody = `<!DOCTYPE html>
<html><head><title>Welcome</title></head>
<body><h1>Please sign in to continue</h1></body></html>
`

func (i *Issuer) routes() http.Handler {
	mux := http.NewServeMux()
	i.handle(mux, "GET /"+discoveryPath, endpointDiscovery, i.serveDiscovery)
	i.handle(mux, "GET /"+jwksPath, endpointJWKS, i.serveJWKS)
	i.handle(mux, "GET /"+userInfoPath, endpointUserInfo, i.serveUserInfo)
	i.handle(mux, "POST /"+userInfoPath, endpointUserInfo, i.serveUserInfo)
	i.handle(mux, "POST /"+introspectionPath, endpointIntrospection, i.serveIntrospection)
	return mux
}

// handle registers h for pattern behind what every endpoint shares: the
// request is counted, held by SetDelay, then answered 503 if the issuer is
// down, else by h.
func (i *Issuer) handle(mux *http.ServeMux, pattern string, e endpoint, h http.HandlerFunc) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		arrived := time.Now()
		if !i.enter() {
			http.Error(w, "issuer closed", http.StatusServiceUnavailable)
			return
		}
		defer i.inflight.Done()
		i.count(e)
		if !i.hold(r.Context(), arrived) {
			return // client gone or issuer closed: nobody to answer
		}
		i.mu.Lock()
		down := i.down
		i.mu.Unlock()
		if down {
			http.Error(w, "issuer down (jwkstest SetDown)", http.StatusServiceUnavailable)
			return
		}
		h(w, r)
	})
}

// enter reports whether the issuer is open, and if so counts an answer in
// progress, which the caller must end with inflight.Done.
func (i *Issuer) enter() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.closed {
		return false
	}
	i.inflight.Add(1)
	return true
}

// hold waits until the answer to a request that arrived at arrived is due,
// re-reading the delay whenever SetDelay changes it. It reports false if the
// client went away or the issuer was closed first.
func (i *Issuer) hold(ctx context.Context, arrived time.Time) bool {
	for {
		i.mu.Lock()
		d, changed := i.delay, i.delayChanged
		i.mu.Unlock()
		wait := time.Until(arrived.Add(d))
		if wait <= 0 {
			return true
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
			return true
		case <-changed:
			t.Stop()
		case <-ctx.Done():
			t.Stop()
			return false
		case <-i.done:
			t.Stop()
			return false
		}
	}
}

// discovery is the OpenID Provider Metadata (OpenID Connect Discovery 1.0
// §3), with the endpoints an Auth0 tenant lists, and an RFC 7662
// introspection endpoint (RFC 8414 §2). Discovery, the JWKS, /userinfo and
// introspection are served; the other endpoints are only listed.
type discovery struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	DeviceAuthorizationEndpoint       string   `json:"device_authorization_endpoint"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	ScopesSupported                   []string `json:"scopes_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
}

func (i *Issuer) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	i.mu.Lock()
	var algs []string // of the published keys, each once, in JWKS order
	for _, p := range i.keys {
		if !slices.Contains(algs, p.key.Algorithm) {
			algs = append(algs, p.key.Algorithm)
		}
	}
	i.mu.Unlock()

	d := discovery{
		Issuer:                            i.url,
		AuthorizationEndpoint:             i.url + "authorize",
		TokenEndpoint:                     i.url + "oauth/token",
		DeviceAuthorizationEndpoint:       i.url + "oauth/device/code",
		UserinfoEndpoint:                  i.url + userInfoPath,
		RevocationEndpoint:                i.url + "oauth/revoke",
		IntrospectionEndpoint:             i.url + introspectionPath,
		JWKSURI:                           i.url + jwksPath,
		ScopesSupported:                   []string{"openid", "profile", "email", "offline_access"},
		ResponseTypesSupported:            []string{"code", "token", "id_token", "code id_token", "code token", "id_token token", "code id_token token"},
		GrantTypesSupported:               []string{"authorization_code", "client_credentials", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"},
		SubjectTypesSupported:             []string{"public"},
		IDTokenSigningAlgValuesSupported:  algs,
		TokenEndpointAuthMethodsSupported: []string{"client_secret_basic", "client_secret_post", "private_key_jwt"},
		CodeChallengeMethodsSupported:     []string{"S256", "plain"},
		ClaimsSupported:                   []string{"aud", "auth_time", "created_at", "email", "email_verified", "exp", "family_name", "given_name", "iat", "identities", "iss", "name", "nickname", "phone_number", "picture", "sub"},
	}
	writeJSON(w, d)
}

func (i *Issuer) serveJWKS(w http.ResponseWriter, r *http.Request) {
	i.mu.Lock()
	keys, body, garbage, cc := i.jwks, i.jwksBody, i.garbage, i.cacheControl
	i.mu.Unlock()

	if cc != "" {
		w.Header().Set("Cache-Control", cc)
	}
	switch {
	case garbage:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(garbageBody))
	case body != nil:
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	default:
		w.Header().Set("Content-Type", "application/json")
		w.Write(keys) // never modified: rebuildLocked replaces it
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}
