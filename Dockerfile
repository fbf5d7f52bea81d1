# syntax=docker/dockerfile:1.7
# Images of bedrock-gateway, one target per binary, all from one build of the workspace:
#
#   docker build --target proxy    -t <registry>/bedrock-gateway-proxy:0.1.0 .
#   docker build --target operator -t <registry>/bedrock-gateway-operator:0.1.0 .
#   docker build --target sim      -t <registry>/bedrock-sim:0.1.0 .
#
# Runtime: distroless (glibc, no shell, no package manager), user 65532 (nonroot). The
# binaries speak TLS with rustls and ship their own root certificates (webpki-roots).
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 --target proxy ...

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and the target dir between builds; the binaries are copied
# out of the cached target dir because cache mounts are not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked \
      --bin bedrock-gateway-proxy --bin bedrock-gateway-operator --bin bedrock-sim \
 && mkdir -p /out \
 && cp target/release/bedrock-gateway-proxy target/release/bedrock-gateway-operator \
       target/release/bedrock-sim /out/

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
USER 65532:65532
LABEL org.opencontainers.image.source="https://example.invalid/bedrock-gateway" \
      org.opencontainers.image.licenses="Apache-2.0"

# The OpenAI API on AWS Bedrock. Ports: 8080 API, 9090 metrics and probes (chart defaults).
FROM runtime AS proxy
COPY --from=build /out/bedrock-gateway-proxy /usr/local/bin/bedrock-gateway-proxy
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/bedrock-gateway-proxy"]

# The operator (`run`, `crdgen`, `render -f DIR`). Port 9090: metrics and probes.
FROM runtime AS operator
COPY --from=build /out/bedrock-gateway-operator /usr/local/bin/bedrock-gateway-operator
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/bedrock-gateway-operator"]

# The Bedrock simulator, for in-cluster demos and tests without AWS.
FROM runtime AS sim
COPY --from=build /out/bedrock-sim /usr/local/bin/bedrock-sim
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/bedrock-sim"]
