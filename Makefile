# Klaxon — build, run, test. Everything needs only Go; `make test` also uses
# the peers .ci/run installs (Alertmanager, Prometheus, dynalite, goaws).
GO      ?= go
MODULES := proto services lambdas e2e
TEST_FLAGS ?= -count=1 -timeout 20m

# Pinned code generators (make proto): buf and the Go plugins, built from the
# Go module proxy into bin/ (nothing else to install). vtproto generates the
# reflection-free MarshalVT/UnmarshalVT the bus hot path uses.
BUF                := github.com/bufbuild/buf/cmd/buf@v1.75.0
PROTOC_GEN_GO      := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.0
PROTOC_GEN_VTPROTO := github.com/planetscale/vtprotobuf/cmd/protoc-gen-go-vtproto@v0.6.0

.PHONY: all build run test lint proto lambdas bench clean fmt

all: build

build:
	cd services && $(GO) build -o ../bin/klaxon ./cmd/klaxon
	cd services && $(GO) build -o ../bin/klaxonctl ./cmd/klaxonctl

## run: the whole system, embedded NATS under ./data, rules from ./rules.
run: build
	./bin/klaxon run --target=all --rules rules --data data \
		--http 127.0.0.1:9095 --grpc 127.0.0.1:9096 --nats.listen 127.0.0.1:4222

## test: every unit, integration and e2e test of all modules.
test: build
	@set -e; for m in $(MODULES); do \
		if [ -z "$$(cd $$m && $(GO) list ./... 2>/dev/null)" ]; then echo "== $$m: no packages"; continue; fi; \
		echo "== go test $$m"; \
		(cd $$m && $(GO) test $(TEST_FLAGS) ./...); \
	done

lint:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) vet ./...); done
	@if command -v staticcheck >/dev/null; then set -e; for m in $(MODULES); do (cd $$m && staticcheck ./...); done; \
	else echo "staticcheck not installed: go install honnef.co/go/tools/cmd/staticcheck@latest"; fi

## proto: lint the .proto files and regenerate proto/gen (buf.gen.yaml) with
## the pinned buf and plugins (first run builds buf: a few minutes).
proto:
	GOBIN=$(CURDIR)/bin $(GO) install $(BUF)
	GOBIN=$(CURDIR)/bin $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(CURDIR)/bin $(GO) install $(PROTOC_GEN_GO_GRPC)
	GOBIN=$(CURDIR)/bin $(GO) install $(PROTOC_GEN_VTPROTO)
	cd proto && PATH=$(CURDIR)/bin:$$PATH buf lint && rm -rf gen && PATH=$(CURDIR)/bin:$$PATH buf generate

lambdas:
	$(MAKE) -C lambdas lambdas

## bench: Go benchmarks of the hot paths, then Klaxon and a real Alertmanager
## side by side (needs prometheus-alertmanager; prints a table, writes bench/results/).
BENCH_TIME ?= 1s
bench: build
	cd services && $(GO) test -run XXX -bench . -benchtime $(BENCH_TIME) ./receiver/... ./engine/... ./policy/... ./slo/... ./bus/...
	cd e2e && $(GO) build -o ../bin/klaxon-bench ./bench
	./bin/klaxon-bench -klaxon bin/klaxon -out bench/results

clean:
	rm -rf bin data
