# syntax=docker/dockerfile:1
# The gateway (`tracemark serve`) as users install it: the packages are built and packed here, then
# installed with npm from their tarballs, as from the registry. See docs/docker.md.

ARG NODE_IMAGE=node:20-bookworm-slim

# 1. Build every package and pack it (pnpm pack rewrites workspace: ranges to versions).
FROM ${NODE_IMAGE} AS build
# The pinned pnpm, installed with npm: Node 20's corepack fails on the registry's current signatures.
RUN npm install --global pnpm@10.34.9
WORKDIR /src
COPY pnpm-lock.yaml pnpm-workspace.yaml ./
RUN pnpm fetch
COPY . .
# No install scripts here: nothing native is needed to build (better-sqlite3 is built in stage 2).
RUN pnpm install --frozen-lockfile --offline --ignore-scripts && pnpm build
# Every package that is not private (the console is private: its built page is copied below).
RUN mkdir /tarballs && for dir in packages/* apps/*; do \
      if node -e 'process.exit(require("./" + process.argv[1] + "/package.json").private ? 1 : 0)' "$dir"; then \
        (cd "$dir" && pnpm pack --pack-destination /tarballs); \
      fi; \
    done

# 2. Install the CLI and the gateway from the tarballs. better-sqlite3 downloads a prebuilt binary for
#    this platform, or compiles one with these tools when none fits.
FROM ${NODE_IMAGE} AS install
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /tarballs /tarballs
RUN npm install --prefix /opt/tracemark --omit=dev --no-audit --no-fund /tarballs/*.tgz
# The gateway serves the verification console from ../../../console/dist beside its own dist/plugins.
COPY --from=build /src/apps/console/dist /opt/tracemark/node_modules/@tracemark/console/dist
# Train the embedded model once, into the image (otherwise on first start, about 5 s).
ENV TRACEMARK_CACHE_DIR=/opt/tracemark/cache
RUN /opt/tracemark/node_modules/.bin/tracemark generate --no-watermark --prompt warm --max-tokens 1 >/dev/null

# 3. The runtime: Node and the installed packages, no compiler, no pnpm, an unprivileged user.
FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    PATH=/opt/tracemark/node_modules/.bin:$PATH \
    TRACEMARK_CACHE_DIR=/opt/tracemark/cache \
    TRACEMARK_DATA_DIR=/data \
    TRACEMARK_HOST=0.0.0.0 \
    TRACEMARK_PORT=8787
COPY --from=install /opt/tracemark /opt/tracemark
RUN mkdir /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8787
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+process.env.TRACEMARK_PORT+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["tracemark"]
CMD ["serve"]
