# Multi-stage build: compile with the Rust toolchain, ship a small non-root runtime image.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# Embedded at compile time: sqlx::migrate! reads migrations/, Cargo.toml names the benches.
COPY migrations ./migrations
COPY benches ./benches
RUN cargo build --release --locked --bin gateway --bin mock-provider

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app gateway \
    && mkdir -p /app/data && chown gateway /app/data
WORKDIR /app
COPY --from=build /src/target/release/gateway /src/target/release/mock-provider /usr/local/bin/
COPY gateway.toml /app/gateway.toml
USER gateway
# The SQLite database, the master key file and the undelivered usage spool live here: keep them
# across container restarts.
VOLUME ["/app/data"]
EXPOSE 8080
# Listen on all interfaces inside the container; the config file default is loopback only.
ENTRYPOINT ["gateway"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
