# userve: `make dev` runs the sandbox, `make test` runs every test.
SHELL := /usr/bin/env bash
BIN := $(CURDIR)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMG ?= userve:$(VERSION)
GO_TEST_FLAGS ?=
DEV_FLAGS ?=

CONTROLLER_GEN := $(BIN)/controller-gen
HELM := $(BIN)/helm

.PHONY: all help tools generate manifests build build-dev test lint dev bench image image-tar image-push docker-build test-node clean

all: build

help: ## Show the targets.
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-14s %s\n",$$1,$$2}'

tools: ## Build what is missing in bin/ (cached per version outside the clone).
	@hack/tools/install.sh

generate: tools ## Generate deepcopy code, the chart's Grafana dashboards, the OpenAPI documents and their Go clients.
	$(CONTROLLER_GEN) object paths=./api/...
	go run ./observability/dashboards/gen
	go run ./openapi/gen docs/openapi
	@for d in management enduser; do \
		$(BIN)/oapi-codegen -config openapi/client/$$d/oapi-codegen.yaml docs/openapi/$$d.json; \
		echo "wrote openapi/client/$$d/client.gen.go"; done

manifests: generate ## Generate the CRD and RBAC into config/ and the chart.
	$(CONTROLLER_GEN) crd rbac:roleName=userve-operator paths=./api/... paths=./controllers/... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	@hack/sync-chart-crds.sh

build: ## Build the image's binaries: bin/userve (operator, pool, serve...) and bin/userve-serve (tenant pods).
	@echo "building $(BIN)/userve and $(BIN)/userve-serve..."
	@mkdir -p $(BIN)
	@CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN)/ . ./cmd/userve-serve

build-dev: build ## Build bin/userve-dev, the sandbox (links envtest; never in the image).
	@echo "building $(BIN)/userve-dev..."
	@CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN)/userve-dev ./cmd/userve-dev

test: tools ## Run every test (unit, store, server, envtest, chart, e2e, the console in chromium).
	@hack/browser/install.sh
	go test $(GO_TEST_FLAGS) ./...

lint: ## go vet and gofmt.
	go vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

dev: tools build-dev ## Run the local sandbox (Ctrl-C stops everything; DEV_FLAGS=--reset etc.).
	$(BIN)/userve-dev $(DEV_FLAGS)

bench: tools build ## Run the benchmark harness into bench/results/.
	go run ./bench

# The image make image writes: the two static binaries (userve, and beside it
# userve-serve, which `userve serve` becomes: docs/server.md, "Two binaries"),
# /etc/passwd naming the nonroot user, the CA bundle, nothing else (no shell,
# no base image pulled). The Dockerfile describes the same image for Docker users;
# test/install keeps the two in step.
IMAGE_TAR ?= $(BIN)/userve-image.tar
IMAGE_BINARY ?= $(BIN)/userve
IMAGE_SERVE_BINARY ?= $(dir $(IMAGE_BINARY))userve-serve
# Mozilla's roots for TLS, where crypto/x509 reads them (hack/cabundle).
IMAGE_CA_BUNDLE ?= $(dir $(IMAGE_BINARY))ca-certificates.crt
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
IMAGE_FLAGS = -file $(IMAGE_BINARY):/usr/local/bin/userve -file $(IMAGE_SERVE_BINARY):/usr/local/bin/userve-serve \
	-file $(IMAGE_CA_BUNDLE):/etc/ssl/certs/ca-certificates.crt:0644 \
	-passwd -user 65532:65532 \
	-entrypoint /usr/local/bin/userve -cmd --help -expose 8080 -expose 8081 \
	-label org.opencontainers.image.title=userve \
	-label "org.opencontainers.image.description=userve operator and tenant user service" \
	-label org.opencontainers.image.source=https://github.com/userve/userve \
	-label org.opencontainers.image.licenses=Apache-2.0 \
	-label org.opencontainers.image.version=$(VERSION)

image: build ## Write bin/userve-image.tar without Docker (docker load / ctr images import).
	@$(MAKE) -s --no-print-directory image-tar

image-tar: # The image of IMAGE_BINARY into IMAGE_TAR (make image builds the binary first).
	@hack/tools/install.sh mkimage
	@go run ./hack/cabundle $(IMAGE_CA_BUNDLE)
	@$(BIN)/mkimage build -out $(IMAGE_TAR) -tag $(IMG) -epoch $(SOURCE_DATE_EPOCH) $(IMAGE_FLAGS)

image-push: image ## Push the image: make image-push IMG=registry/name:tag (~/.docker/config.json credentials).
	@if [ "$(origin IMG)" = file ]; then echo "image-push needs IMG=registry/name:tag"; exit 2; fi
	$(BIN)/mkimage push -ref $(IMG) $(IMAGE_TAR)

docker-build: ## Build the container image (needs a Docker engine).
	docker build --build-arg VERSION=$(VERSION) -t $(IMG) .

test-node: ## Run the chart on a real single-node cluster (root; see docs/test-node.md).
	@hack/node/test.sh

clean: ## Remove bin/ links and the sandbox state (the tool cache stays).
	rm -rf $(BIN) .userve
