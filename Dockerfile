# syntax=docker/dockerfile:1
# One image for every role: `userve operator` (the manager), `userve pool` and
# `userve serve` (a tenant's server), which hands over to userve-serve beside
# it, the same server without the operator's libraries (docs/server.md, "Two
# binaries"). `make image` writes the same image without Docker
# (hack/tools/mkimage; test/install checks the two agree). Build: make docker-build, or
#   docker build --build-arg VERSION=v0.1.0 -t ghcr.io/userve/userve:0.1.0 .

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
# Dependencies first, so that source edits reuse this layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS=linux
ARG TARGETARCH
# Static, reproducible: no cgo, no local paths, version stamped in.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/ . ./cmd/userve-serve

FROM gcr.io/distroless/static:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="userve" \
      org.opencontainers.image.description="userve operator and tenant user service" \
      org.opencontainers.image.source="https://github.com/userve/userve" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/userve /out/userve-serve /usr/local/bin/
# distroless's nonroot user (65532:65532), numeric so that runAsNonRoot can check it.
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/userve"]
CMD ["--help"]
