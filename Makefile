# The README's test command is `make test`. CI (.ci/run) installs NGINX first,
# so the forward-auth test runs for real there; on a machine without NGINX it
# is skipped.
FUZZTIME ?= 5s

.PHONY: test vet unit deploy fuzz bench-smoke

test: vet unit deploy fuzz bench-smoke

vet:
	test -z "$$(gofmt -l . | tee /dev/stderr)"
	go vet ./...

unit:
	go test -race ./...

# The Kubernetes manifests are checked in their own module, so that the main
# module does not depend on the Kubernetes API packages.
deploy:
	cd deploy && go vet ./... && go test ./...

fuzz:
	go test -run='^$$' -fuzz='^FuzzValidate$$' -fuzztime=$(FUZZTIME) ./middleware/
	go test -run='^$$' -fuzz='^FuzzExtractBearer$$' -fuzztime=$(FUZZTIME) ./middleware/
	go test -run='^$$' -fuzz='^FuzzUnmarshalJSON$$' -fuzztime=$(FUZZTIME) ./scopes/

# Benchmarks are never timed tests; CI runs each once to prove it still works.
bench-smoke:
	go test -run='^$$' -bench=. -benchtime=1x ./...
