package jwks

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
)

// Set is a source of verification keys: a [*Remote] or a [*Static].
type Set interface {
	// Key returns the key with the given ID, [ErrKeyNotFound], or
	// [ErrUnavailable] when no keys were ever loaded.
	Key(ctx context.Context, kid string) (Key, error)
	// Status reports the state of the set.
	Status() Status
}

// Status of a static set: always loaded.
func (s *Static) Status() Status {
	return Status{Loaded: true, Keys: s.keys.len()}
}

// RegistryOptions tunes a [Registry]. The zero value discovers every issuer's
// key set with default [RemoteOptions].
type RegistryOptions struct {
	// JWKSURLs maps an issuer to the URL of its key set, overriding discovery.
	// A file:// URL is read once at start into a [Static] set. Issuers that
	// map to the same URL share one [Remote] (an Auth0 custom domain and its
	// tenant domain, say), so the issuer sees one fetch, not two.
	JWKSURLs map[string]string
	// Static holds key sets already read from file:// URLs of JWKSURLs, by
	// that URL, for a caller that read the files to check them (the binary
	// does, to report every configuration problem at once): they are used
	// as given, not read again. A file URL not in it is read by NewRegistry.
	Static map[string]*Static
	// Remote tunes every remote set. Its OnRefresh is replaced: use
	// OnRefresh below, which also names the issuers.
	Remote RemoteOptions
	// OnRefresh, if set, is called after every fetch attempt with the
	// issuers the set serves. It must not block.
	OnRefresh func(issuers []string, event RefreshEvent)
}

// IssuerStatus is the [Status] of one issuer's key set.
type IssuerStatus struct {
	Issuer string
	Status
}

// Registry binds each trusted issuer to its own key set. A token naming issuer
// A is looked up only in A's set.
type Registry struct {
	issuers []string
	sets    map[string]Set
	remotes []*Remote
}

// NewRegistry creates the key sets of the given issuers and starts fetching
// them. It reports every configuration problem at once.
func NewRegistry(issuers []string, opts RegistryOptions) (*Registry, error) {
	var errs []error
	if len(issuers) == 0 {
		errs = append(errs, errors.New("jwks: no issuers"))
	}
	for i, iss := range issuers {
		if err := CheckURL(iss); err != nil {
			errs = append(errs, fmt.Errorf("issuer: %w", err))
		}
		if slices.Contains(issuers[:i], iss) {
			errs = append(errs, fmt.Errorf("jwks: issuer %q given twice", iss))
		}
	}
	for iss, u := range opts.JWKSURLs {
		if !slices.Contains(issuers, iss) {
			errs = append(errs, fmt.Errorf("jwks: key set URL given for %q, which is not a trusted issuer", iss))
		}
		if p, err := url.Parse(u); err == nil && p.Scheme == "file" {
			continue
		}
		if err := CheckURL(u); err != nil {
			errs = append(errs, fmt.Errorf("key set URL of %s: %w", iss, err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	r := &Registry{issuers: slices.Clone(issuers), sets: make(map[string]Set, len(issuers))}
	byURL := make(map[string]Set)
	servedBy := make(map[string][]string) // key set URL (or issuer, for discovery) → issuers
	for _, iss := range issuers {
		key := iss
		if u, ok := opts.JWKSURLs[iss]; ok {
			key = u
		}
		servedBy[key] = append(servedBy[key], iss)
	}
	for _, iss := range issuers {
		if _, dup := r.sets[iss]; dup {
			continue
		}
		u, explicit := opts.JWKSURLs[iss]
		key := iss
		if explicit {
			key = u
		}
		if set, ok := byURL[key]; ok {
			r.sets[iss] = set
			continue
		}
		set, err := r.newSet(iss, u, explicit, servedBy[key], opts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		byURL[key] = set
		r.sets[iss] = set
	}
	if len(errs) > 0 {
		r.Close()
		return nil, errors.Join(errs...)
	}
	return r, nil
}

func (r *Registry) newSet(issuer, rawURL string, explicit bool, served []string, opts RegistryOptions) (Set, error) {
	if explicit {
		if p, err := url.Parse(rawURL); err == nil && p.Scheme == "file" {
			path := p.Path
			if p.Host != "" && p.Host != "localhost" {
				return nil, fmt.Errorf("jwks: file URL %q of %s must be file:///path", rawURL, issuer)
			}
			s, ok := opts.Static[rawURL]
			if !ok || s == nil {
				var err error
				if s, err = LoadFile(path); err != nil {
					return nil, fmt.Errorf("key set of %s: %w", issuer, err)
				}
			}
			if l := opts.Remote.Logger; l != nil {
				for _, d := range s.dropped {
					l.Warn("jwks: key dropped", "url", rawURL, "reason", d)
				}
			}
			return s, nil
		}
	}
	ro := opts.Remote
	ro.OnRefresh = nil
	if opts.OnRefresh != nil {
		ro.OnRefresh = func(e RefreshEvent) { opts.OnRefresh(served, e) }
	}
	var (
		rem *Remote
		err error
	)
	if explicit {
		rem, err = NewRemote(rawURL, ro)
	} else {
		rem, err = NewDiscovered(issuer, ro)
	}
	if err != nil {
		return nil, err
	}
	r.remotes = append(r.remotes, rem)
	return rem, nil
}

// Issuers returns the trusted issuers, in the order given.
func (r *Registry) Issuers() []string { return slices.Clone(r.issuers) }

// Set returns the key set of a trusted issuer.
func (r *Registry) Set(issuer string) (Set, bool) {
	s, ok := r.sets[issuer]
	return s, ok
}

// Status reports every issuer's key set, in the order the issuers were given.
func (r *Registry) Status() []IssuerStatus {
	out := make([]IssuerStatus, 0, len(r.issuers))
	for _, iss := range r.issuers {
		out = append(out, IssuerStatus{Issuer: iss, Status: r.sets[iss].Status()})
	}
	return out
}

// Ready reports whether every issuer's keys have been loaded.
func (r *Registry) Ready() bool {
	for _, iss := range r.issuers {
		if !r.sets[iss].Status().Loaded {
			return false
		}
	}
	return true
}

// Close stops every background refresh.
func (r *Registry) Close() {
	for _, rem := range r.remotes {
		rem.Close()
	}
}
