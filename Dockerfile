# safebox: a multi-stage build. The first stage compiles the release binary; the
# second holds only that binary and the C runtime it links against.
#
#   docker build -t safebox .
#   docker run -p 49999:49999 -v safebox-data:/var/lib/safebox \
#     -e SAFEBOX_MASTER_KEYS="mk-1:$(safebox keys generate ...)" \
#     -e SAFEBOX_JWT_SECRET="..." safebox
#
# SQLite is compiled into the binary. The image is built with the mysql feature,
# so it also serves mysql:// URLs and needs the MySQL client library
# (libmariadb3) at run time; Redis support is pure Rust. See docs/deployment.md
# for the keys, volumes and a MySQL/Redis setup.

FROM rust:1.95-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmariadb-dev-compat \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p safebox-server --features mysql \
    && strip target/release/safebox

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libmariadb3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /var/lib/safebox --shell /usr/sbin/nologin safebox \
    && install -d -o safebox -g safebox -m 0700 /var/lib/safebox
COPY --from=build /src/target/release/safebox /usr/local/bin/safebox
USER safebox
WORKDIR /var/lib/safebox
# Listen on every interface inside the container; publish the port to choose who
# reaches it. Keys must come from the environment (or a mounted config file):
# without them safebox writes development keys into the volume and warns.
# /metrics gets its own port, so that publishing the API's port does not
# publish login and lockout counts too; publish 9100 only to your monitoring.
ENV SAFEBOX_HOST=0.0.0.0 \
    SAFEBOX_PORT=49999 \
    SAFEBOX_METRICS_ADDR=0.0.0.0:9100 \
    SAFEBOX_DATA_DIR=/var/lib/safebox \
    SAFEBOX_LOG_FORMAT=json
VOLUME ["/var/lib/safebox"]
EXPOSE 49999 9100
# SIGTERM stops it gracefully: no new connections, in-flight requests get 10 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/safebox"]
CMD ["serve"]
