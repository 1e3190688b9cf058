package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenward/tokenward/admin"
	"github.com/tokenward/tokenward/internal/filewatch"
)

// TLS on the main listener (TOKENWARD_TLS_*).
const (
	// Values of TOKENWARD_TLS_CLIENT_AUTH.
	clientAuthNone    = "none"
	clientAuthRequest = "request" // a certificate, if sent, must verify
	clientAuthRequire = "require" // a certificate must be sent and verify

	// defaultTLSInterval is the check interval when
	// TOKENWARD_TLS_RELOAD_INTERVAL is not set: the rules file's.
	defaultTLSInterval = 5 * time.Second
	// maxPEMBytes bounds each of the certificate, key and CA files.
	maxPEMBytes = 1 << 20
)

// tlsFiles names the PEM files the listener serves with. ca is "" without
// client certificates.
type tlsFiles struct {
	cert, key, ca string
	clientAuth    tls.ClientAuthType
}

// tlsState is one version of the files, parsed: what new connections get.
type tlsState struct {
	config   *tls.Config // returned as is by GetConfigForClient
	leaf     *x509.Certificate
	notAfter time.Time
}

// checkTLS checks the TLS variables and, when TLS is on, reads and parses
// the files, so that a server that starts can serve (the first state of the
// reloader).
func (c *Config) checkTLS() []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if c.TLSReloadInterval < 0 && !c.unreadable["TOKENWARD_TLS_RELOAD_INTERVAL"] {
		add("TOKENWARD_TLS_RELOAD_INTERVAL: %s is negative", c.TLSReloadInterval)
	}
	on := c.TLSCertFile != "" || c.TLSKeyFile != ""
	switch {
	case c.TLSCertFile != "" && c.TLSKeyFile == "":
		add("TOKENWARD_TLS_KEY_FILE is not set: TOKENWARD_TLS_CERT_FILE needs the private key of its certificate (tls.key of a kubernetes.io/tls Secret)")
	case c.TLSCertFile == "" && c.TLSKeyFile != "":
		add("TOKENWARD_TLS_CERT_FILE is not set: TOKENWARD_TLS_KEY_FILE needs its certificate (tls.crt of a kubernetes.io/tls Secret)")
	}
	auth := tls.NoClientCert
	switch c.TLSClientAuth {
	case "":
		// A CA file says client certificates are wanted: unset means
		// require then, never a CA that checks nothing.
		if c.TLSClientCAFile != "" {
			auth = tls.RequireAndVerifyClientCert
		}
	case clientAuthNone:
		if c.TLSClientCAFile != "" {
			add("TOKENWARD_TLS_CLIENT_AUTH: none, but TOKENWARD_TLS_CLIENT_CA_FILE is set: use request or require, or remove the CA file")
		}
	case clientAuthRequest, clientAuthRequire:
		auth = tls.VerifyClientCertIfGiven
		if c.TLSClientAuth == clientAuthRequire {
			auth = tls.RequireAndVerifyClientCert
		}
		if c.TLSClientCAFile == "" {
			add("TOKENWARD_TLS_CLIENT_AUTH: %s needs TOKENWARD_TLS_CLIENT_CA_FILE, the CA certificates client certificates are verified with", c.TLSClientAuth)
		}
	default:
		add("TOKENWARD_TLS_CLIENT_AUTH: %q is not one of none, request, require", c.TLSClientAuth)
	}
	if !on {
		if c.TLSClientCAFile != "" || c.TLSClientAuth != "" {
			add("TOKENWARD_TLS_CLIENT_CA_FILE and TOKENWARD_TLS_CLIENT_AUTH need TLS on the listener: set TOKENWARD_TLS_CERT_FILE and TOKENWARD_TLS_KEY_FILE")
		}
		if c.TLSReloadInterval != 0 {
			c.ignored = append(c.ignored, "TOKENWARD_TLS_RELOAD_INTERVAL is ignored without TOKENWARD_TLS_CERT_FILE")
		}
		return problems
	}
	if c.TLSCertFile == "" || c.TLSKeyFile == "" {
		return problems
	}
	// The files are read even after a problem above: every problem is
	// reported at once.
	files := &tlsFiles{cert: c.TLSCertFile, key: c.TLSKeyFile, ca: c.TLSClientCAFile, clientAuth: auth}
	before := len(problems)
	var pems [3][]byte
	for i, v := range []struct{ name, path string }{
		{"TOKENWARD_TLS_CERT_FILE", c.TLSCertFile},
		{"TOKENWARD_TLS_KEY_FILE", c.TLSKeyFile},
		{"TOKENWARD_TLS_CLIENT_CA_FILE", c.TLSClientCAFile},
	} {
		if v.path == "" {
			continue
		}
		data, err := filewatch.New(v.path, maxPEMBytes).Read()
		if err != nil {
			add("%s: %v", v.name, err)
		}
		pems[i] = data
	}
	if len(problems) > before {
		return problems
	}
	st, err := files.parse(pems[0], pems[1], pems[2])
	for _, e := range unjoin(err) {
		add("%s", e)
	}
	if len(problems) == 0 {
		c.tls, c.tlsState, c.tlsHash, c.tlsLoaded = files, st, pemHash(pems), time.Now()
	}
	return problems
}

// parse builds what the listener serves with from the files' contents:
// TLS 1.2 at least, Go's default cipher suites, HTTP/2 and HTTP/1.1 over
// ALPN, and the client CAs. Each error names the variable of its file.
func (f *tlsFiles) parse(certPEM, keyPEM, caPEM []byte) (*tlsState, error) {
	var errs []error
	if err := pemComplete(certPEM); err != nil {
		errs = append(errs, fmt.Errorf("TOKENWARD_TLS_CERT_FILE: %s %w", f.cert, err))
	}
	if err := pemComplete(keyPEM); err != nil {
		errs = append(errs, fmt.Errorf("TOKENWARD_TLS_KEY_FILE: %s %w", f.key, err))
	}
	var pool *x509.CertPool
	if f.ca != "" {
		var err error
		if pool, err = parseCAs(caPEM); err != nil {
			errs = append(errs, fmt.Errorf("TOKENWARD_TLS_CLIENT_CA_FILE: %s: %w", f.ca, err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// The messages of X509KeyPair say what is wrong (no PEM, the inputs
	// switched, the key not the certificate's) and quote no key material.
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("TOKENWARD_TLS_CERT_FILE and TOKENWARD_TLS_KEY_FILE (%s, %s): %s", f.cert, f.key, strings.TrimPrefix(err.Error(), "tls: "))
	}
	leaf := cert.Leaf // parsed by X509KeyPair
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("TOKENWARD_TLS_CERT_FILE: %s: %w", f.cert, err)
		}
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2", "http/1.1"},
		ClientAuth:   f.clientAuth,
		ClientCAs:    pool,
	}
	return &tlsState{config: cfg, leaf: leaf, notAfter: leaf.NotAfter}, nil
}

// pemComplete refuses data that holds no PEM block, or whose last block is
// cut: a file caught while being written. tls.X509KeyPair would otherwise
// take the blocks before the cut and serve a chain without its
// intermediates.
func pemComplete(data []byte) error {
	n := 0
	rest := data
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		n++
	}
	switch {
	case n == 0:
		return errors.New("holds no PEM block")
	case bytes.Contains(rest, []byte("-----BEGIN")):
		return fmt.Errorf("ends in a cut PEM block after %d whole ones (a file being written?)", n)
	}
	return nil
}

// parseCAs reads every certificate of a PEM bundle. Unlike
// CertPool.AppendCertsFromPEM it refuses a block it cannot parse and a cut
// one, rather than verify clients with part of the bundle.
func parseCAs(data []byte) (*x509.CertPool, error) {
	if err := pemComplete(data); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for n, rest := 1, data; ; n++ {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return pool, nil
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("holds a %q PEM block; only CERTIFICATE blocks belong in a CA bundle", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", n, err)
		}
		pool.AddCert(c)
	}
}

// pemHash identifies the three files' contents together.
func pemHash(pems [3][]byte) [sha256.Size]byte {
	h := sha256.New()
	for _, p := range pems {
		binary.Write(h, binary.BigEndian, uint64(len(p)))
		h.Write(p)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// tlsReloader keeps what new connections are served with in step with the
// files: checked every interval (a stat of each; read when it may have
// changed; parsed when the contents differ from what was last read) and at
// once on SIGHUP. A version that does not parse (garbage, a key that is not
// the certificate's, a file cut while being written) or a file that cannot be
// read leaves the version in force in place; each such failure is logged and
// counted once. Connections already open keep the certificate they were
// made with: a reload never closes one.
type tlsReloader struct {
	files    *tlsFiles
	interval time.Duration

	state atomic.Pointer[tlsState] // read by every handshake

	// mu serialises reloads (the poll and SIGHUP) and guards the fields
	// below it. Handshakes never take it.
	mu       sync.Mutex
	watch    [3]*filewatch.File // cert, key, CA (nil without one)
	pems     [3][]byte          // the contents last read
	hash     [sha256.Size]byte  // of pems, good or bad
	outcomes reloadOutcomes

	stop func()
}

// startTLSReloader polls the files of cfg until close. The state read by
// the configuration check is in force at first.
func startTLSReloader(cfg *Config, log *slog.Logger) *tlsReloader {
	r := &tlsReloader{
		files:    cfg.tls,
		interval: cfg.TLSReloadInterval,
		hash:     cfg.tlsHash,
		outcomes: reloadOutcomes{log: log, text: reloadText{
			cannotRead:   "tls: cannot read a certificate file; the certificate in force stays",
			unchangedBad: "tls: files unchanged since their failed reload; the certificate in force stays",
			unchanged:    "tls: files unchanged; the certificate in force is theirs",
			failed:       "tls: reload failed; the certificate in force stays",
		}},
	}
	if r.interval == 0 {
		r.interval = defaultTLSInterval
	}
	for i, path := range []string{cfg.tls.cert, cfg.tls.key, cfg.tls.ca} {
		if path != "" {
			r.watch[i] = filewatch.New(path, maxPEMBytes)
		}
	}
	r.state.Store(cfg.tlsState)
	r.outcomes.lastReload.Store(cfg.tlsLoaded.UnixNano())
	r.stop = every(r.interval, func() { r.reload(false) })
	return r
}

// serverConfig is the listener's tls.Config: every handshake reads the
// state in force, so that a reload reaches new connections at once.
func (r *tlsReloader) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return &r.state.Load().config.Certificates[0], nil
		},
		// The whole per-version config, for its client CAs: tickets stay
		// encrypted with the listener's keys, and Go checks a resumed
		// session's client certificate against the CAs of this config.
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.state.Load().config, nil
		},
	}
}

// close stops the polling; the state in force stays.
func (r *tlsReloader) close() { r.stop() }

// reload checks the files and loads them if they changed. forced (SIGHUP)
// reads them whatever their stat says, and logs the outcome even when
// nothing changed.
func (r *tlsReloader) reload(forced bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := false
	for i, w := range r.watch {
		if w == nil {
			continue
		}
		if forced {
			w.Reset()
		}
		data, err := w.Read()
		if err != nil {
			r.outcomes.readFailed(err, forced)
			return
		}
		if data != nil {
			r.pems[i], changed = data, true
		}
	}
	recovered := r.outcomes.readOK()
	if sum := pemHash(r.pems); !changed || sum == r.hash {
		r.outcomes.unchanged(recovered, forced, "cert_file", r.files.cert)
		return
	}
	r.hash = pemHash(r.pems)
	st, err := r.files.parse(r.pems[0], r.pems[1], r.pems[2])
	if err != nil {
		r.outcomes.parseFailed(err)
		return
	}
	r.state.Store(st)
	r.outcomes.loaded()
	r.outcomes.log.Info("tls: reloaded", certAttrs(st, forced)...)
}

// certAttrs describe the certificate in force for the logs: what an
// operator compares with the renewed Secret. Nothing here is secret.
func certAttrs(st *tlsState, forced bool) []any {
	return []any{
		"subject", st.leaf.Subject.String(),
		"dns_names", st.leaf.DNSNames,
		"serial", st.leaf.SerialNumber.Text(16),
		"not_after", st.notAfter.UTC().Format(time.RFC3339),
		"client_cas", st.config.ClientCAs != nil,
		"sighup", forced,
	}
}

// status is what the metrics read.
func (r *tlsReloader) status() admin.TLSStatus {
	return admin.TLSStatus{
		LastReload:   time.Unix(0, r.outcomes.lastReload.Load()),
		ReloadErrors: r.outcomes.errors.Load(),
		Failing:      r.outcomes.failing.Load(),
		NotAfter:     r.state.Load().notAfter,
	}
}
