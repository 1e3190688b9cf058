package main

import (
	"crypto/sha256"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenward/tokenward/admin"
	"github.com/tokenward/tokenward/internal/filewatch"
	"github.com/tokenward/tokenward/proxy"
	"github.com/tokenward/tokenward/scopes"
)

// Reloading of TOKENWARD_RULES_FILE.
const (
	// defaultRulesInterval is the check interval when
	// TOKENWARD_RULES_RELOAD_INTERVAL is not set: the deny list file's.
	defaultRulesInterval = 5 * time.Second
	// maxRulesBytes bounds the rules file, at start and on reload.
	maxRulesBytes = 1 << 20
)

// rulesReloader keeps the rules in force (set) in step with the rules file:
// checked every interval (a stat; read when it may have changed, loaded when
// its SHA-256 differs from what was last read) and at once on SIGHUP. A
// version that does not compile, or a file that cannot be read, leaves the
// rules in force in place; each such failure (a bad version, a new read
// error) is logged and counted once.
type rulesReloader struct {
	set      *proxy.RuleSet
	global   scopes.Requirement
	interval time.Duration

	// mu serialises reloads (the poll and SIGHUP) and guards file, hash
	// and the outcomes' errors. The request path never takes it.
	mu       sync.Mutex
	file     *filewatch.File
	hash     [sha256.Size]byte // of the content last read, good or bad
	outcomes reloadOutcomes

	stop func()
}

// readRules reads and compiles the rules file, within maxRulesBytes. It
// returns the rules and the SHA-256 of the content.
func readRules(path string, global scopes.Requirement) (*proxy.Rules, [sha256.Size]byte, error) {
	data, err := filewatch.New(path, maxRulesBytes).Read()
	if err != nil {
		return nil, [sha256.Size]byte{}, err
	}
	rules, err := proxy.ParseRules(data, global)
	return rules, sha256.Sum256(data), err
}

// startRulesReloader polls the rules file of cfg until close. The rules
// loaded by the configuration check are those in force at first.
func startRulesReloader(cfg *Config, log *slog.Logger) *rulesReloader {
	r := &rulesReloader{
		set:      proxy.NewRuleSet(cfg.rules),
		global:   cfg.required,
		interval: cfg.RulesReloadInterval,
		file:     filewatch.New(cfg.RulesFile, maxRulesBytes),
		hash:     cfg.rulesHash,
		outcomes: reloadOutcomes{log: log, text: reloadText{
			cannotRead:   "rules: cannot read the rules file; the rules in force stay",
			unchangedBad: "rules: file unchanged since its failed reload; the rules in force stay",
			unchanged:    "rules: file unchanged; the rules in force are its own",
			failed:       "rules: reload failed; the rules in force stay",
		}},
	}
	if r.interval == 0 {
		r.interval = defaultRulesInterval
	}
	r.outcomes.lastReload.Store(cfg.rulesLoaded.UnixNano())
	r.stop = every(r.interval, func() { r.reload(false) })
	return r
}

// close stops the polling; the rules in force stay.
func (r *rulesReloader) close() { r.stop() }

// reload checks the file and loads it if it changed. forced (SIGHUP) reads
// the file whatever its stat says, and logs the outcome even when nothing
// changed, as an answer to the operator.
func (r *rulesReloader) reload(forced bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	path := r.file.Path()
	if forced {
		r.file.Reset()
	}
	data, err := r.file.Read()
	if err != nil {
		// A missing or unreadable file never means "no rules": those in
		// force stay, which is the fail-closed choice.
		r.outcomes.readFailed(err, forced, "file", path)
		return
	}
	recovered := r.outcomes.readOK()
	if sum := sha256.Sum256(data); data == nil || sum == r.hash {
		r.outcomes.unchanged(recovered, forced, "file", path)
		return
	}
	r.hash = sha256.Sum256(data)
	rules, err := proxy.ParseRules(data, r.global)
	if err == nil && noRoutes(data) {
		err = errors.New("the file has no routes list: taken for a write in progress (write routes: [] for no rules)")
	}
	if err != nil {
		r.outcomes.parseFailed(err, "file", path)
		return
	}
	r.set.Store(rules)
	r.outcomes.loaded()
	r.outcomes.log.Info("rules: reloaded", "file", path, "rules", rules.Len(), "sighup", forced)
}

// status is what the metrics read.
func (r *rulesReloader) status() admin.RulesStatus {
	return admin.RulesStatus{
		LastReload:   time.Unix(0, r.outcomes.lastReload.Load()),
		ReloadErrors: r.outcomes.errors.Load(),
		Failing:      r.outcomes.failing.Load(),
	}
}

// noRoutes tells whether data holds no routes list: no YAML document
// (nothing, or only comments), or one without a routes key or with an empty
// value ("routes:", the first line of a file being written line by line).
// On reload that is not "no rules": it is what a file truncated for
// rewriting looks like, and loading it would drop every rule's scopes.
func noRoutes(data []byte) bool {
	var n yaml.Node
	if yaml.Unmarshal(data, &n) != nil {
		return false // ParseRules says what is wrong
	}
	if n.Kind == 0 || len(n.Content) == 0 {
		return true
	}
	doc := n.Content[0]
	if doc.Kind == yaml.ScalarNode && doc.Tag == "!!null" {
		return true // "---" alone
	}
	if doc.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value == "routes" {
			v := doc.Content[i+1]
			return v.Kind == yaml.ScalarNode && v.Tag == "!!null"
		}
	}
	return true
}

// oneLine flattens errors.Join trees (every problem of a rules file) and
// YAML's multi-line messages into one line.
func oneLine(err error) string {
	var parts []string
	for _, e := range unjoin(err) {
		parts = append(parts, strings.Join(strings.Fields(strings.TrimPrefix(e.Error(), "proxy: ")), " "))
	}
	return strings.Join(parts, "; ")
}
