# The kuma-sync image, for docker or podman (README.md, "Container image and Helm"):
#   . deploy/image.env && docker build -t "$KUMA_SYNC_IMAGE_REPOSITORY:$KUMA_SYNC_IMAGE_TAG" .
# deploy/image.env is the one place for the name and tag. The runtime has no shell and no package
# manager; kuma-sync runs as UID 65532 (distroless "nonroot"), the user the manifests
# and the Helm chart expect. Without a registry to pull these bases from, .ci/image
# builds the same layout FROM scratch with buildah.

# The daemon is built without the `demo` feature: it does not link kuma-sim, the
# simulator it is tested against. Rust as pinned in rust-toolchain.toml; Debian 12, like the runtime, so the glibc the
# binary links against is the one it runs on.
FROM docker.io/library/rust:1.95.0-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p kuma-sync --bin kuma-sync --no-default-features \
 && install -D -m 0755 target/release/kuma-sync /out/kuma-sync

# glibc, libgcc and CA certificates, no shell; runs as nonroot (65532:65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/kuma-sync /usr/local/bin/kuma-sync
USER 65532:65532
EXPOSE 9465
ENTRYPOINT ["/usr/local/bin/kuma-sync"]
CMD ["serve", "--config", "/etc/kuma-sync/kuma-sync.yaml"]
