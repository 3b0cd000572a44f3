# The `sluice` image: one binary for every role (certs, keeper, broker, CLI tools).
#
#   docker build -t sluice:local .         (docker-compose.yml builds it the same way)
#   docker run --rm sluice:local --help
#
# RUST_VERSION: the toolchain the project is built and tested with, Cargo.toml's
# rust-version (Cargo.lock's crates need at least 1.89; 1.95 is what CI runs).
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p sluice-bin \
 && install -m 0755 target/release/sluice /usr/local/bin/sluice

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 sluice \
 && useradd --system --uid 10001 --gid sluice --no-create-home --home-dir /data \
      --shell /usr/sbin/nologin sluice \
 && mkdir -p /certs /data /etc/sluice \
 && chown sluice:sluice /certs /data
# An empty named volume mounted on /certs or /data starts with the owner of the image's
# directory there, so the unprivileged user can write certificates, keeper data and logs.
COPY --from=build /usr/local/bin/sluice /usr/local/bin/sluice
USER sluice
WORKDIR /data
ENTRYPOINT ["sluice"]
CMD ["--help"]
