# syntax=docker/dockerfile:1

# tokenward container image: a static binary on distroless, running as nonroot.
#
#   docker build --build-arg VERSION=0.1.0 -t ghcr.io/tokenward/tokenward:0.1.0 .
#
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 ...
# (the build stage runs natively and cross-compiles; no emulation needed).

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src

# Dependencies first, in their own layer: it is rebuilt only when go.mod or
# go.sum change (and, unlike a cache mount, it is kept by CI layer caches).
COPY go.mod go.sum ./
RUN go mod download

COPY . .

# Set by buildx for the platform being built; empty means the build platform.
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
RUN --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
        -o /out/tokenward ./cmd/tokenward

# distroless/static: CA certificates, /etc/passwd with nonroot (65532), tzdata;
# no shell, no package manager. Kubernetes probes /healthz and /readyz over
# HTTP, so the image needs no HEALTHCHECK tool.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tokenward /tokenward
USER 65532:65532
# 8080: clients (TOKENWARD_LISTEN_ADDR); 9090: /metrics, /healthz, /readyz
# (TOKENWARD_ADMIN_ADDR).
EXPOSE 8080 9090
ENTRYPOINT ["/tokenward"]
