# isoexec: a multi-stage build. The builder compiles the release binary (the
# v8 crate downloads its prebuilt V8 during the build; set RUSTY_V8_ARCHIVE
# to a local archive to build without that download). The runtime image is
# Debian slim with the binary, run as a non-root user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY runtime_js ./runtime_js
COPY assets ./assets
COPY benches ./benches
COPY tests ./tests
COPY examples ./examples
RUN cargo build --release --locked --bin isoexec

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/isoexec --create-home isoexec \
    && mkdir -p /var/lib/isoexec/workspace /var/lib/isoexec/data /var/lib/isoexec/tools /var/lib/isoexec/vendor \
    && chown -R isoexec:isoexec /var/lib/isoexec
COPY --from=build /src/target/release/isoexec /usr/local/bin/isoexec
USER isoexec
WORKDIR /var/lib/isoexec
ENV HOST=0.0.0.0 \
    PORT=3000 \
    WORKSPACE_DIR=/var/lib/isoexec/workspace \
    TOOLS_DIR=/var/lib/isoexec/tools \
    VENDOR_DIR=/var/lib/isoexec/vendor \
    DATA_DIR=/var/lib/isoexec/data \
    LOG_FORMAT=json
EXPOSE 3000
VOLUME ["/var/lib/isoexec/workspace", "/var/lib/isoexec/data"]
# SIGTERM drains in-flight requests (up to 30 s), then exits. Health is
# GET /health (the Kubernetes probes use it; the image has no HTTP client).
STOPSIGNAL SIGTERM
ENTRYPOINT ["isoexec"]
CMD ["serve"]
