package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// tlsEnv is the environment of a TLS-serving binary in proxy mode: public
// GET /status (the README's rules), an echo upstream, the files given.
func tlsEnv(t *testing.T, files ...string) map[string]string {
	t.Helper()
	env := map[string]string{
		"TOKENWARD_ISSUERS":             newIssuer(t).URL(),
		"TOKENWARD_AUDIENCES":           audience,
		"TOKENWARD_UPSTREAM":            echoUpstream(t).URL,
		"TOKENWARD_RULES_FILE":          testRulesFile(t),
		"TOKENWARD_TLS_RELOAD_INTERVAL": "20ms",
	}
	for i := 0; i+1 < len(files); i += 2 {
		env[files[i]] = files[i+1]
	}
	return env
}

// TestTLSReloadUnderLoad: the certificate is replaced while clients send
// requests, through a Secret's ..data swap and by renaming files over the
// old ones. No request fails; new connections get the new certificate (and,
// once one has, none gets the old one again); connections open before the
// swap stay open, on the old certificate.
func TestTLSReloadUnderLoad(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"secret", "rename"} {
		t.Run(how, func(t *testing.T) {
			ca := newTestCA(t, "tokenward test CA")
			first, second := ca.issue(t, "first", false), ca.issue(t, "second", false)
			var certFile, keyFile string
			var rotate func()
			switch how {
			case "secret":
				m := newSecretMount(t, map[string][]byte{"tls.crt": first.certPEM, "tls.key": first.keyPEM})
				certFile, keyFile = m.path("tls.crt"), m.path("tls.key")
				rotate = func() { m.update(map[string][]byte{"tls.crt": second.certPEM, "tls.key": second.keyPEM}) }
			case "rename":
				certFile, keyFile = writeFile(t, "tls.crt", string(first.certPEM)), writeFile(t, "tls.key", string(first.keyPEM))
				rotate = func() {
					replaceFile(t, keyFile, string(second.keyPEM))
					replaceFile(t, certFile, string(second.certPEM))
				}
			}
			s := serveTLSBinary(t, tlsEnv(t, "TOKENWARD_TLS_CERT_FILE", certFile, "TOKENWARD_TLS_KEY_FILE", keyFile), ca.pool)
			if v, _ := metric(t, s, "tokenward_tls_certificate_expiry_timestamp_seconds"); v != float64(first.cert.NotAfter.Unix()) {
				t.Errorf("expiry metric %v, want the first certificate's %d", v, first.cert.NotAfter.Unix())
			}

			l := startTLSLoad(t, s, ca.pool, first.cert.SerialNumber, second.cert.SerialNumber)
			l.waitRequests(t, 50)
			rotate()
			waitServed(t, s, ca.pool, second.cert)
			l.waitRequests(t, l.requests.Load()+100)
			l.end(t)
			if !l.sawNew.Load() {
				t.Error("no loaded request saw the new certificate")
			}
			if v, _ := metric(t, s, "tokenward_tls_certificate_expiry_timestamp_seconds"); v != float64(second.cert.NotAfter.Unix()) {
				t.Errorf("expiry metric %v, want the second certificate's %d", v, second.cert.NotAfter.Unix())
			}
			if failing, _ := metric(t, s, "tokenward_tls_reload_failing"); failing != 0 {
				t.Errorf("tokenward_tls_reload_failing = %v after a good rotation", failing)
			}
			s.stderr.waitLog(t, "tls: reloaded", "subject", "CN=second")
		})
	}
}

// tlsLoad sends GET /status over new connections and over kept-alive ones
// until end.
type tlsLoad struct {
	oldSerial, newSerial *big.Int
	sawNew               atomic.Bool
	requests             atomic.Int64
	stop                 chan struct{}
	wg                   sync.WaitGroup

	mu       sync.Mutex // guards problems
	problems []string
}

func startTLSLoad(t *testing.T, s *server, roots *x509.CertPool, oldSerial, newSerial *big.Int) *tlsLoad {
	l := &tlsLoad{oldSerial: oldSerial, newSerial: newSerial, stop: make(chan struct{})}
	for i := range 6 {
		keepAlive := i < 2
		c := tlsClient(t, roots, nil, keepAlive, false)
		l.wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-l.stop:
					return
				default:
				}
				sawNewBefore := l.sawNew.Load()
				reused := false
				req, _ := http.NewRequest("GET", s.url+"/status", nil)
				req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
					GotConn: func(ci httptrace.GotConnInfo) { reused = ci.Reused },
				}))
				resp, err := c.Do(req)
				if err != nil {
					l.problem("request failed: %v", err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				l.requests.Add(1)
				serial := resp.TLS.PeerCertificates[0].SerialNumber
				switch {
				case resp.StatusCode != http.StatusOK:
					l.problem("status %d", resp.StatusCode)
				case keepAlive && n > 0 && !reused:
					l.problem("a kept-alive connection was closed (request %d on a new one)", n)
				case keepAlive && serial.Cmp(oldSerial) != 0:
					l.problem("a connection opened before the rotation shows serial %v", serial)
				case keepAlive:
				case serial.Cmp(newSerial) == 0:
					l.sawNew.Store(true)
				case serial.Cmp(oldSerial) != 0:
					l.problem("serial %v is neither certificate's", serial)
				case sawNewBefore:
					l.problem("a new connection got the old certificate after one had got the new")
				}
			}
		})
	}
	t.Cleanup(func() { l.end(t) })
	return l
}

func (l *tlsLoad) problem(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.problems) < 10 {
		l.problems = append(l.problems, fmt.Sprintf(format, args...))
	}
}

// waitRequests waits until n requests have been answered.
func (l *tlsLoad) waitRequests(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for l.requests.Load() < n {
		l.mu.Lock()
		stuck := len(l.problems) > 0
		l.mu.Unlock()
		if stuck || time.Now().After(deadline) {
			l.end(t)
			t.Fatalf("%d requests answered, waiting for %d", l.requests.Load(), n)
		}
		time.Sleep(5 * time.Millisecond) // polling, with a deadline
	}
}

// end stops the load and reports its problems.
func (l *tlsLoad) end(t *testing.T) {
	t.Helper()
	select {
	case <-l.stop:
		return
	default:
	}
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.problems {
		t.Error(p)
	}
}

// TestTLSBadFilesKeepPair: a Secret version that cannot be served (garbage,
// a key that is not the certificate's, a chain or key cut while written,
// files gone) leaves the certificate in force; each is counted and logged
// once, and the next good version is loaded.
func TestTLSBadFilesKeepPair(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "tokenward test CA")
	first, second, other := ca.issue(t, "first", false), ca.issue(t, "second", false), ca.issue(t, "other", false)
	pair := func(cert, key []byte) map[string][]byte { return map[string][]byte{"tls.crt": cert, "tls.key": key} }
	m := newSecretMount(t, pair(first.certPEM, first.keyPEM))
	s := serveTLSBinary(t, tlsEnv(t, "TOKENWARD_TLS_CERT_FILE", m.path("tls.crt"), "TOKENWARD_TLS_KEY_FILE", m.path("tls.key")), ca.pool)

	bad := []struct {
		name  string
		files map[string][]byte
	}{
		{"garbage certificate", pair([]byte("this is not a certificate\n"), second.keyPEM)},
		{"key of another certificate", pair(second.certPEM, other.keyPEM)},
		// tls.X509KeyPair alone would serve the leaf without the rest.
		{"chain cut while written", pair(append(bytes.Clone(second.certPEM), ca.pem[:len(ca.pem)/2]...), second.keyPEM)},
		{"key cut while written", pair(second.certPEM, second.keyPEM[:len(second.keyPEM)/2])},
		{"empty key", pair(second.certPEM, nil)},
		{"files gone", map[string][]byte{"unrelated": []byte("x")}},
	}
	for i, b := range bad {
		m.update(b.files)
		waitMetric(t, s, "tokenward_tls_reload_errors_total", func(v float64) bool { return v == float64(i+1) })
		if v, _ := metric(t, s, "tokenward_tls_reload_failing"); v != 1 {
			t.Errorf("%s: tokenward_tls_reload_failing = %v, want 1", b.name, v)
		}
		serial, code, err := servedSerial(t, s, ca.pool, "/status", nil)
		if err != nil || code != http.StatusOK || serial.Cmp(first.cert.SerialNumber) != 0 {
			t.Errorf("%s: a new connection got serial %v, status %d, %v; want the first certificate's %v, 200", b.name, serial, code, err, first.cert.SerialNumber)
		}
	}
	m.update(pair(second.certPEM, second.keyPEM))
	waitServed(t, s, ca.pool, second.cert)
	waitMetric(t, s, "tokenward_tls_reload_failing", func(v float64) bool { return v == 0 })
	if v, _ := metric(t, s, "tokenward_tls_reload_errors_total"); v != float64(len(bad)) {
		t.Errorf("tokenward_tls_reload_errors_total = %v after the good version, want %d", v, len(bad))
	}
	// Every bad version was checked many times (every 20ms): logged once.
	count := func(msg string) int {
		return strings.Count(s.stderr.String(), `"msg":"`+msg+`"`)
	}
	if n := count("tls: reload failed; the certificate in force stays"); n != len(bad)-1 {
		t.Errorf("%d reload failures logged, want %d (one per bad version)", n, len(bad)-1)
	}
	if n := count("tls: cannot read a certificate file; the certificate in force stays"); n != 1 {
		t.Errorf("%d read failures logged, want 1", n)
	}
}

// TestTLSClientCertificates: request verifies a certificate if one is sent;
// require refuses the handshake without one; a certificate from another CA
// is refused by both. The client CA file is reloaded like the pair.
func TestTLSClientCertificates(t *testing.T) {
	t.Parallel()
	serverCA, clientCA, otherCA := newTestCA(t, "server CA"), newTestCA(t, "client CA"), newTestCA(t, "other CA")
	serverPair := serverCA.issue(t, "server", false)
	good, stranger := clientCA.issue(t, "good client", true), otherCA.issue(t, "stranger", true)
	serverOnly := clientCA.issue(t, "a server", false) // extended key usage serverAuth only

	for _, tc := range []struct {
		mode                 string
		none, good, stranger bool // served
	}{
		{clientAuthRequest, true, true, false},
		{clientAuthRequire, false, true, false},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			m := newSecretMount(t, map[string][]byte{"tls.crt": serverPair.certPEM, "tls.key": serverPair.keyPEM, "ca.crt": clientCA.pem})
			s := serveTLSBinary(t, tlsEnv(t,
				"TOKENWARD_TLS_CERT_FILE", m.path("tls.crt"), "TOKENWARD_TLS_KEY_FILE", m.path("tls.key"),
				"TOKENWARD_TLS_CLIENT_CA_FILE", m.path("ca.crt"), "TOKENWARD_TLS_CLIENT_AUTH", tc.mode), serverCA.pool)
			try := func(cert *tls.Certificate) error {
				resp, err := tlsClient(t, serverCA.pool, cert, false, false).Get(s.url + "/status")
				if err != nil {
					return err
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("status %d", resp.StatusCode)
				}
				return nil
			}
			for _, c := range []struct {
				name   string
				cert   *tls.Certificate
				served bool
			}{
				{"no certificate", nil, tc.none},
				{"certificate of the client CA", &good.tls, tc.good},
				{"certificate of another CA", &stranger.tls, tc.stranger},
				{"certificate of the client CA, not for clients", &serverOnly.tls, false},
			} {
				if err := try(c.cert); (err == nil) != c.served {
					t.Errorf("%s: error %v, want served: %v", c.name, err, c.served)
				}
			}

			// A client that resumes its TLS session (no new certificate
			// sent): checked against the CAs in force too, below.
			resumer := tlsClient(t, serverCA.pool, &good.tls, false, false)
			resumer.Transport.(*http.Transport).TLSClientConfig.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			resume := func() (resumed bool, err error) {
				resp, err := resumer.Get(s.url + "/status")
				if err != nil {
					return false, err
				}
				resp.Body.Close()
				return resp.TLS.DidResume, nil
			}
			if _, err := resume(); err != nil {
				t.Fatal(err)
			}
			if resumed, err := resume(); err != nil || !resumed {
				t.Fatalf("second connection: resumed %v, %v; want a resumed session", resumed, err)
			}

			// The CA file now names the other CA: its clients get in, the
			// first CA's no longer.
			m.update(map[string][]byte{"tls.crt": serverPair.certPEM, "tls.key": serverPair.keyPEM, "ca.crt": otherCA.pem})
			deadline := time.Now().Add(waitTimeout)
			for try(&stranger.tls) != nil {
				if time.Now().After(deadline) {
					t.Fatalf("a certificate of the new client CA is still refused after %s", waitTimeout)
				}
				time.Sleep(5 * time.Millisecond) // polling, with a deadline
			}
			if err := try(&good.tls); err == nil {
				t.Error("a certificate of the client CA no longer in the file is still accepted")
			}
			if resumed, err := resume(); err == nil {
				t.Errorf("a session of the CA no longer in the file was served (resumed: %v); want a full handshake, refused", resumed)
			}
		})
	}
}

// TestTLSProtocols: HTTP/2 is negotiated over ALPN with a client offering
// it, HTTP/1.1 with one that does not; TLS 1.1 is refused, TLS 1.2 served.
func TestTLSProtocols(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "tokenward test CA")
	p := ca.issue(t, "server", false)
	iss := newIssuer(t)
	env := tlsEnv(t, "TOKENWARD_TLS_CERT_FILE", writeFile(t, "tls.crt", string(p.certPEM)), "TOKENWARD_TLS_KEY_FILE", writeFile(t, "tls.key", string(p.keyPEM)))
	env["TOKENWARD_ISSUERS"] = iss.URL()
	// Go's own default would refuse TLS 1.1 too; this setting turns that
	// default off, so that the refusal below is tokenward's MinVersion.
	env["GODEBUG"] = "tls10server=1"
	s := serveTLSBinary(t, env, ca.pool)
	token := mint(t, iss, map[string]any{"scope": "read:contacts"})

	for _, h2 := range []bool{true, false} {
		r, err := http.NewRequest("GET", s.url+"/api/contacts/1", nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Authorization", "Bearer "+token)
		resp, err := tlsClient(t, ca.pool, nil, true, h2).Do(r)
		if err != nil {
			t.Fatalf("h2 %v: %v", h2, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		want := 1
		if h2 {
			want = 2
		}
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != want {
			t.Fatalf("client offering h2 %v: status %d over HTTP/%d, want 200 over HTTP/%d", h2, resp.StatusCode, resp.ProtoMajor, want)
		}
		if got := (response{body: body}).seen(t).Header.Get("X-Forwarded-Proto"); got != "https" {
			t.Errorf("the upstream got X-Forwarded-Proto %q, want https", got)
		}
	}

	for _, tc := range []struct {
		max    uint16
		served bool
	}{{tls.VersionTLS11, false}, {tls.VersionTLS12, true}} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS10, MaxVersion: tc.max}}
		resp, err := (&http.Client{Transport: tr, Timeout: waitTimeout}).Get(s.url + "/status")
		if err == nil {
			resp.Body.Close()
		}
		if (err == nil) != tc.served {
			t.Errorf("client with TLS %s at most: error %v, want served %v", tls.VersionName(tc.max), err, tc.served)
		}
		tr.CloseIdleConnections()
	}
}

// TestTLSCurl: curl, a TLS client we did not write, against required
// client certificates: served with a certificate of the client CA (over
// HTTP/1.1 and HTTP/2), refused without one or with another CA's.
func TestTLSCurl(t *testing.T) {
	t.Parallel()
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("curl is required under CI: %v", err)
		}
		t.Skipf("curl not installed (apt-get install -y curl): %v", err)
	}
	serverCA, clientCA, otherCA := newTestCA(t, "server CA"), newTestCA(t, "client CA"), newTestCA(t, "other CA")
	serverPair := serverCA.issue(t, "server", false)
	good, stranger := clientCA.issue(t, "good client", true), otherCA.issue(t, "stranger", true)
	file := func(name string, data []byte) string { return writeFile(t, name, string(data)) }
	s := serveTLSBinary(t, tlsEnv(t,
		"TOKENWARD_TLS_CERT_FILE", file("tls.crt", serverPair.certPEM), "TOKENWARD_TLS_KEY_FILE", file("tls.key", serverPair.keyPEM),
		"TOKENWARD_TLS_CLIENT_CA_FILE", file("ca.crt", clientCA.pem), "TOKENWARD_TLS_CLIENT_AUTH", clientAuthRequire), serverCA.pool)
	cacert := file("server-ca.crt", serverCA.pem)
	goodCert, goodKey := file("good.crt", good.certPEM), file("good.key", good.keyPEM)
	strangerCert, strangerKey := file("stranger.crt", stranger.certPEM), file("stranger.key", stranger.keyPEM)

	for _, tc := range []struct {
		name string
		args []string
		want string // curl's -w output; "" for a failed handshake
	}{
		{"client certificate, HTTP/1.1", []string{"--http1.1", "--cert", goodCert, "--key", goodKey}, "200 1.1"},
		{"client certificate, HTTP/2", []string{"--http2", "--cert", goodCert, "--key", goodKey}, "200 2"},
		{"no client certificate", nil, ""},
		{"certificate of another CA", []string{"--cert", strangerCert, "--key", strangerKey}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-sS", "--max-time", "20", "--cacert", cacert, "-o", "/dev/null", "-w", "%{http_code} %{http_version}"}, tc.args...)
			cmd := exec.Command(curl, append(args, s.url+"/status")...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			switch {
			case tc.want != "" && (err != nil || stdout.String() != tc.want):
				t.Errorf("curl %v: %q, %v (%s); want %q", tc.args, stdout.String(), err, stderr.String(), tc.want)
			case tc.want == "" && (err == nil || strings.HasPrefix(stdout.String(), "200")):
				t.Errorf("curl %v: %q, %v; want the handshake refused", tc.args, stdout.String(), err)
			}
		})
	}
}

// TestTLSReloaderLogsOnce: a bad version is logged and counted once,
// however often it is checked; files that stay unreadable likewise; a
// SIGHUP answers again; the next good version is loaded.
func TestTLSReloaderLogsOnce(t *testing.T) {
	ca := newTestCA(t, "tokenward test CA")
	first, second := ca.issue(t, "first", false), ca.issue(t, "second", false)
	certFile, keyFile := writeFile(t, "tls.crt", string(first.certPEM)), writeFile(t, "tls.key", string(first.keyPEM))
	cfg, err := loadConfig(mapGetenv(map[string]string{
		"TOKENWARD_ISSUERS": "https://issuer.example.com/", "TOKENWARD_AUDIENCES": audience,
		"TOKENWARD_MODE":          modeForwardAuth,
		"TOKENWARD_TLS_CERT_FILE": certFile, "TOKENWARD_TLS_KEY_FILE": keyFile,
		"TOKENWARD_TLS_RELOAD_INTERVAL": "1h", // reloads are called below
	}), forServing)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var mu sync.Mutex
	r := startTLSReloader(cfg, slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logs}, nil)))
	defer r.close()
	count := func(msg string) int {
		mu.Lock()
		defer mu.Unlock()
		return strings.Count(logs.String(), `"msg":"`+msg+`"`)
	}
	const failed = "tls: reload failed; the certificate in force stays"
	const unreadable = "tls: cannot read a certificate file; the certificate in force stays"
	inForce := r.state.Load()

	r.reload(false)
	if count(failed)+count("tls: reloaded") != 0 || r.state.Load() != inForce {
		t.Fatalf("the files as read at start were reloaded: %s", logs.String())
	}
	replaceFile(t, certFile, "garbage\n")
	for range 3 {
		r.reload(false)
	}
	if n, st := count(failed), r.status(); n != 1 || st.ReloadErrors != 1 || !st.Failing || r.state.Load() != inForce {
		t.Errorf("one bad version checked 3 times: %d log lines, status %+v; want 1, 1 error, failing, pair kept", n, st)
	}
	r.reload(true) // SIGHUP: answered, not counted again
	if n, st := count(failed), r.status(); n != 1 || st.ReloadErrors != 1 || count("tls: files unchanged since their failed reload; the certificate in force stays") != 1 {
		t.Errorf("SIGHUP on the same bad version: %d failure lines, %d errors; logs:\n%s", n, st.ReloadErrors, logs.String())
	}
	os.Remove(keyFile)
	for range 3 {
		r.reload(false)
	}
	if n, st := count(unreadable), r.status(); n != 1 || st.ReloadErrors != 2 || r.state.Load() != inForce {
		t.Errorf("a missing key checked 3 times: %d log lines, %d errors; want 1, 2", n, st.ReloadErrors)
	}
	replaceFile(t, keyFile, string(second.keyPEM))
	replaceFile(t, certFile, string(second.certPEM))
	r.reload(false)
	st := r.status()
	if st.Failing || r.state.Load() == inForce || count("tls: reloaded") != 1 || !st.NotAfter.Equal(second.cert.NotAfter) {
		t.Errorf("a good version after bad ones: status %+v; logs:\n%s", st, logs.String())
	}
	if got := r.serverConfig().GetConfigForClient; got == nil {
		t.Fatal("no GetConfigForClient")
	} else if c, _ := got(nil); c.Certificates[0].Leaf.SerialNumber.Cmp(second.cert.SerialNumber) != 0 {
		t.Error("handshakes do not get the reloaded certificate")
	}
}

// TestTLSReloadSIGHUP: with an interval no test waits for, a SIGHUP loads
// the renewed pair at once; in forward-auth mode, the other mode of the
// listener.
func TestTLSReloadSIGHUP(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "tokenward test CA")
	first, second := ca.issue(t, "first", false), ca.issue(t, "second", false)
	m := newSecretMount(t, map[string][]byte{"tls.crt": first.certPEM, "tls.key": first.keyPEM})
	env := tlsEnv(t, "TOKENWARD_TLS_CERT_FILE", m.path("tls.crt"), "TOKENWARD_TLS_KEY_FILE", m.path("tls.key"),
		"TOKENWARD_TLS_RELOAD_INTERVAL", "1h", "TOKENWARD_MODE", modeForwardAuth)
	delete(env, "TOKENWARD_UPSTREAM")
	s := serveTLSBinary(t, env, ca.pool)
	public := func(r *http.Request) {
		r.Header.Set("X-Forwarded-Method", "GET")
		r.Header.Set("X-Forwarded-Uri", "/status")
	}
	if serial, code, err := servedSerial(t, s, ca.pool, "/", public); err != nil || code != http.StatusOK || serial.Cmp(first.cert.SerialNumber) != 0 {
		t.Fatalf("forward-auth over TLS: serial %v, status %d, %v; want the first certificate, 200", serial, code, err)
	}
	m.update(map[string][]byte{"tls.crt": second.certPEM, "tls.key": second.keyPEM})
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	s.stderr.waitLog(t, "tls: reloaded", "subject", "CN=second")
	if serial, code, err := servedSerial(t, s, ca.pool, "/", public); err != nil || code != http.StatusOK || serial.Cmp(second.cert.SerialNumber) != 0 {
		t.Fatalf("after SIGHUP: serial %v, status %d, %v; want the second certificate, 200", serial, code, err)
	}
}

// TestTLSInProcess runs the TLS wiring in the test's process, under the race
// detector when the tests are: handshakes on new connections and scrapes
// while the pair is swapped back and forth.
func TestTLSInProcess(t *testing.T) {
	ca := newTestCA(t, "tokenward test CA")
	first, second := ca.issue(t, "first", false), ca.issue(t, "second", false)
	pairs := []map[string][]byte{
		{"tls.crt": first.certPEM, "tls.key": first.keyPEM},
		{"tls.crt": second.certPEM, "tls.key": second.keyPEM},
	}
	m := newSecretMount(t, pairs[0])
	env := tlsEnv(t, "TOKENWARD_TLS_CERT_FILE", m.path("tls.crt"), "TOKENWARD_TLS_KEY_FILE", m.path("tls.key"),
		"TOKENWARD_TLS_RELOAD_INTERVAL", "1ms", "TOKENWARD_LISTEN_ADDR", "127.0.0.1:0", "TOKENWARD_ADMIN_ADDR", "127.0.0.1:0")
	stderr := newLines()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var runErr error
	finished := make(chan struct{})
	go func() {
		runErr = run(ctx, nil, mapGetenv(env), io.Discard, stderr)
		close(finished)
	}()
	t.Cleanup(func() {
		cancel()
		<-finished
	})
	base := "https://" + stderr.waitLog(t, "listening", "server", "proxy").str("addr")
	metrics := "http://" + stderr.waitLog(t, "listening", "server", "admin").str("addr") + "/metrics"

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 4 {
		wg.Go(func() {
			c := tlsClient(t, ca.pool, nil, false, i%2 == 0)
			for range 30 {
				url := base + "/status"
				if i == 3 {
					url = metrics
				}
				resp, err := c.Get(url)
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("%s: status %d", url, resp.StatusCode)
					return
				}
			}
		})
	}
	// Swapped for as long as the clients run (at most 200 versions).
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
swap:
	for i := 1; i <= 200; i++ {
		select {
		case <-done:
			break swap
		default:
			m.update(pairs[i%2])
		}
	}
	<-done
	stderr.waitLog(t, "tls: reloaded")
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	cancel()
	<-finished
	if runErr != nil {
		t.Errorf("run: %v", runErr)
	}
}
