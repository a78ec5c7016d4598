# userve: `make dev` runs the sandbox, `make test` runs every test.
SHELL := /usr/bin/env bash
BIN := $(CURDIR)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMG ?= userve:$(VERSION)
GO_TEST_FLAGS ?=
DEV_FLAGS ?=

CONTROLLER_GEN := $(BIN)/controller-gen
HELM := $(BIN)/helm

.PHONY: all help tools generate manifests build build-dev test lint dev bench docker-build clean

all: build

help: ## Show the targets.
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-14s %s\n",$$1,$$2}'

tools: ## Build what is missing in bin/ (cached per version outside the clone).
	@hack/tools/install.sh

generate: tools ## Generate deepcopy code.
	$(CONTROLLER_GEN) object paths=./api/...

manifests: generate ## Generate the CRD and RBAC into config/ and the chart.
	$(CONTROLLER_GEN) crd rbac:roleName=userve-operator paths=./api/... paths=./controllers/... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	@hack/sync-chart-crds.sh

build: ## Build bin/userve, the image's binary (operator, serve).
	@echo "building $(BIN)/userve..."
	@CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN)/userve .

build-dev: build ## Build bin/userve-dev, the sandbox (links envtest; never in the image).
	@echo "building $(BIN)/userve-dev..."
	@CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN)/userve-dev ./cmd/userve-dev

test: tools ## Run every test (unit, store, server, envtest, chart, e2e).
	go test $(GO_TEST_FLAGS) ./...

lint: ## go vet and gofmt.
	go vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

dev: tools build-dev ## Run the local sandbox (Ctrl-C stops everything; DEV_FLAGS=--reset etc.).
	$(BIN)/userve-dev $(DEV_FLAGS)

bench: tools build ## Run the benchmark harness into bench/results/.
	go run ./bench

docker-build: ## Build the container image (needs a Docker engine).
	docker build --build-arg VERSION=$(VERSION) -t $(IMG) .

clean: ## Remove bin/ links and the sandbox state (the tool cache stays).
	rm -rf $(BIN) .userve
