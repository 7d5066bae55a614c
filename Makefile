# fhirwall: the everyday targets. `make test` is what CI runs.
GO      ?= go
BIN     := bin/fhirwall
PKGS    := ./...
BENCH   ?= .
COUNT   ?= 6

.PHONY: build test demo bench bench-load lint fmt e2e clean

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/fhirwall

## test: every package's tests with the race detector, against the machine's
## Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432).
test:
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

## e2e: the end-to-end suite against Medplum's FHIR engine (npm ci from the
## committed lock files, then go test -tags e2e).
e2e:
	bash e2e/run.sh

## bench-load: the wrk load benchmark; writes bench/RESULTS.md.
bench-load:
	bash bench/run.sh

demo: build
	./$(BIN) demo

## bench: the Go benchmarks, $(COUNT) runs each, ready for benchstat.
bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count $(COUNT) $(PKGS) | tee bench.out
	$(GO) tool benchstat bench.out

lint:
	@unformatted=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)

fmt:
	gofmt -w $$(git ls-files -co --exclude-standard '*.go')

clean:
	rm -rf bin bench.out demo-data
