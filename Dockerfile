# cutover's image: the binary plus bash, git, ssh, tar, gzip and CA certificates, so one image
# serves as a GitHub Docker action (run as root), a TeamCity container step (wrapped in a shell)
# and a CircleCI primary container. No ENTRYPOINT: CircleCI and TeamCity run shell commands in it;
# action.yml names the entrypoint itself.
#
#   docker build -t cutover .                 # compiles cutover, then the runtime image
#
# Targets:
#   runtime            the binary compiled here (the dependencies in their own cached layer)
#   runtime-prebuilt   the binary compiled outside, at target/image/<arch>/cutover (<arch> is
#                      Docker's TARGETARCH: amd64, arm64); the release workflow puts its static
#                      release binaries there, scripts/test-image the one it builds
# Both are `runtime-base` plus the binary.

# The root filesystem: scripts/image-rootfs installs the packages a CI step needs in a Debian
# stage and copies out only them and what they need at run time (it lists each package and why):
# no package manager, no perl, no documentation. To add tools, build your own image and copy the
# static /usr/local/bin/cutover of a released image into it.
# By tag, not digest (README "Install" says why); the digest a build used is in its provenance.
FROM debian:bookworm-slim AS rootfs
COPY scripts/image-rootfs /usr/local/bin/image-rootfs
RUN image-rootfs /rootfs

# One layer holding only the assembled files.
FROM scratch AS runtime-base
COPY --from=rootfs /rootfs /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["cutover", "--help"]

FROM runtime-base AS runtime-prebuilt
ARG TARGETARCH
COPY target/image/${TARGETARCH}/cutover /usr/local/bin/cutover

# The build: cargo-chef turns Cargo.toml and Cargo.lock into a recipe, and the dependencies are
# compiled from the recipe alone, so a change to cutover's own source reuses that layer instead of
# recompiling every dependency. cargo auditable embeds the crate list in the binary, as the
# release workflow's build does, for SBOM scanners (syft, trivy, grype) and `cargo audit bin`.
FROM rust:1-slim-bookworm AS chef
RUN cargo install --locked cargo-chef@0.1.78 cargo-auditable@0.7.7
WORKDIR /src

FROM chef AS plan
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
# The toolchain file first: with it arriving only in `COPY . .`, rustup would switch toolchains
# after the cook and every dependency would be compiled again.
COPY rust-toolchain.toml ./
COPY --from=plan /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
RUN cargo auditable build --release --locked --bin cutover

FROM runtime-base AS runtime
COPY --from=build /src/target/release/cutover /usr/local/bin/cutover
