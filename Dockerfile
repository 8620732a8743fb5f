# blogql container image: build with the Rust toolchain, run from a small
# distroless image as a non-root user.
#   docker build -t blogql .
#   docker run -p 8000:8000 -v blogql-data:/data blogql
# The embedded store lives in /data; set MONGODB_URI (and BLOGQL_JWT_SECRET)
# to run on MongoDB instead. See the README's "Container" section.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so editing the source does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked --bin blogql \
    && rm -rf src
COPY src ./src
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin blogql
# An empty data directory, copied into the runtime image owned by nonroot.
RUN mkdir /data

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=build /src/target/release/blogql /usr/local/bin/blogql
COPY --from=build --chown=nonroot:nonroot /data /data
ENV BLOGQL_BIND=0.0.0.0:8000
ENV BLOGQL_DATA_DIR=/data
WORKDIR /data
USER nonroot
EXPOSE 8000
VOLUME ["/data"]
# The binary asks its own /healthz: the image has no shell and no curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["/usr/local/bin/blogql", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/blogql"]
CMD ["serve"]
