# cutover's image: the binary plus bash, git, ssh, tar, gzip and CA certificates, so one image
# serves as a GitHub Docker action (run as root), a TeamCity container step (wrapped in a shell)
# and a CircleCI primary container. No ENTRYPOINT: CircleCI and TeamCity run shell commands in it;
# action.yml names the entrypoint itself.
#
#   docker build -t cutover .                 # compiles cutover, then the runtime image
#
# The runtime stage is `runtime-base` plus the binary; scripts/test-image builds
# `runtime-prebuilt` (the same base, the binary compiled outside) where no Rust image can be pulled.

FROM debian:bookworm-slim AS runtime-base
RUN apt-get update \
 && apt-get install -y --no-install-recommends bash ca-certificates git openssh-client tar gzip \
 && rm -rf /var/lib/apt/lists/*
CMD ["cutover", "--help"]

FROM runtime-base AS runtime-prebuilt
COPY target/release/cutover /usr/local/bin/cutover

FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM runtime-base AS runtime
COPY --from=build /src/target/release/cutover /usr/local/bin/cutover
