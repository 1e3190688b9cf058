# The README's test command is `make test`: gofmt and go vet, the deploy
# module's manifest checks, short fuzz runs, one iteration of every benchmark,
# the interop module's tests against real upstreams, and last `go test -race
# ./...`, closed by a line counting the packages that passed and failed. CI
# (.ci/run) installs NGINX, Caddy and the upstreams' runtimes first, so those
# tests run for real there; on a machine without them they are skipped.
SHELL := bash

# A count, not a duration: a duration races the fuzz coordinator's deadline on
# a loaded machine and fails with "context deadline exceeded" without a
# finding (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 100000x

.PHONY: test vet unit deploy interop fuzz bench-smoke

test: vet deploy interop fuzz bench-smoke unit

vet:
	test -z "$$(gofmt -l . | tee /dev/stderr)"
	go vet ./...

unit:
	@log=$$(mktemp); go test -race ./... 2>&1 | tee "$$log"; status=$${PIPESTATUS[0]}; \
	echo "packages: $$(grep -c '^ok' "$$log") passed, $$(grep -cE '^FAIL[[:space:]]+[^[:space:]]' "$$log"; true) failed"; \
	rm -f "$$log"; exit $$status

# The Kubernetes manifests are checked in their own module, so that the main
# module does not depend on the Kubernetes API packages.
deploy:
	cd deploy && go vet ./... && go test ./...

# Tests against programs we did not write, started in bulk (the differential
# route test's Tomcat, Flask and Express upstreams), in their own module so
# that go test ./... of the library stays quick.
interop:
	cd interop && go vet ./... && go test -race ./...

# Every parser of untrusted input has a fuzz target; CI runs each briefly.
fuzz:
	go test -run='^$$' -fuzz='^FuzzValidate$$' -fuzztime=$(FUZZTIME) ./middleware/
	go test -run='^$$' -fuzz='^FuzzExtractBearer$$' -fuzztime=$(FUZZTIME) ./middleware/
	go test -run='^$$' -fuzz='^FuzzScanObject$$' -fuzztime=$(FUZZTIME) ./middleware/
	go test -run='^$$' -fuzz='^FuzzDecodeClaimsFast$$' -fuzztime=$(FUZZTIME) ./middleware/
	go test -run='^$$' -fuzz='^FuzzDecodeHeaderFast$$' -fuzztime=$(FUZZTIME) ./middleware/
	go test -run='^$$' -fuzz='^FuzzValid$$' -fuzztime=$(FUZZTIME) ./internal/jsonscan/
	go test -run='^$$' -fuzz='^FuzzWatchedIndex$$' -fuzztime=$(FUZZTIME) ./middleware/
	go test -run='^$$' -fuzz='^FuzzIssuerMember$$' -fuzztime=$(FUZZTIME) ./middleware/
	go test -run='^$$' -fuzz='^FuzzSplit$$' -fuzztime=$(FUZZTIME) ./middleware/
	go test -run='^$$' -fuzz='^FuzzEntryRoundTrip$$' -fuzztime=$(FUZZTIME) ./middleware/
	go test -run='^$$' -fuzz='^FuzzCertHeaders$$' -fuzztime=$(FUZZTIME) ./middleware/
	go test -run='^$$' -fuzz='^FuzzUnmarshalJSON$$' -fuzztime=$(FUZZTIME) ./scopes/
	go test -run='^$$' -fuzz='^FuzzParseIntrospection$$' -fuzztime=$(FUZZTIME) ./opaque/
	go test -run='^$$' -fuzz='^FuzzParseProfile$$' -fuzztime=$(FUZZTIME) ./opaque/
	go test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./denylist/
	go test -run='^$$' -fuzz='^FuzzCheck$$' -fuzztime=$(FUZZTIME) ./extauthz/
	go test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./dpop/

# Benchmarks are never timed tests; CI runs each once to prove it still works.
# bench/ is its own module (it depends on the peers it is compared with).
bench-smoke:
	go test -run='^$$' -bench=. -benchtime=1x ./...
	cd bench && go vet ./... && go test -run=. -bench=. -benchtime=1x ./...
