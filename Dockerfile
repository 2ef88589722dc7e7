# dwell production image: one image, the subcommand picks the role.
#
#   docker build -t dwell:local .
#   docker run --rm dwell:local gateway      # uWebSockets.js edge
#   docker run --rm dwell:local processor    # consumer group -> ClickHouse
#
# Debian (glibc) base on purpose: the uWebSockets.js binary in use
# (@trufflesuite/uws-js-unofficial@20.30.0-unofficial.0, installed as "uWebSockets.js")
# and chDB's libchdb.so are glibc builds. Do not switch to alpine/musl.
#
# Build args:
#   NODE_IMAGE  base image for both stages (default node:20-bookworm-slim; pin a digest
#               in your own registry for reproducible builds).
#   WITH_CHDB   "true" (default) keeps the embedded ClickHouse engine (chDB, ~550 MB:
#               @chdb/lib-linux-x64-gnu). "false" deletes it from the runtime image; only
#               valid when the processor talks to a ClickHouse server (CLICKHOUSE_URL) AND
#               @dwell/warehouse loads chdb lazily (the build checks this, see below).
#
# Only the classic Dockerfile syntax is used (no RUN --mount), so the legacy builder used
# by docker-compose 1.29 builds it as well as BuildKit does.

ARG NODE_IMAGE=node:20-bookworm-slim

# --- manifests: only package.json files + lockfile (and the patches `npm ci` applies to
# dependencies, see patches/), so `npm ci` stays cached -----------------------------------
# This stage sees every source change, but its output only changes when a manifest does,
# so the `npm ci` layer below is reused across code-only changes.
FROM ${NODE_IMAGE} AS manifests
WORKDIR /src
COPY . .
RUN set -eu; \
    mkdir -p /out; \
    cp package.json package-lock.json /out/; \
    cp -a patches /out/; \
    for w in $(node -p "require('./package.json').workspaces.join(' ')"); do \
      case "$w" in *'*'*) echo "glob workspace '$w' not supported by this Dockerfile" >&2; exit 1;; esac; \
      mkdir -p "/out/$w"; \
      cp "$w/package.json" "/out/$w/package.json"; \
    done

# --- build: install everything, compile, then drop dev dependencies ----------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV npm_config_update_notifier=false \
    npm_config_fund=false \
    npm_config_audit=false
COPY --from=manifests /out/ ./
RUN npm ci

COPY tsconfig.base.json tsconfig.json ./
COPY schemas ./schemas
COPY packages ./packages
COPY services ./services
# `npm run build` = `tsc -b`: every workspace gets its dist/.
RUN npm run build
RUN test -f services/cli/dist/main.js \
 || { echo "services/cli/dist/main.js missing after build: the image entrypoint would not exist" >&2; exit 1; }

# Then, in one layer:
#  1. drop dev dependencies;
#  2. keep only this platform's uWS binaries (the package ships darwin/win32/arm builds too);
#  3. fail the build if the native uWS binary does not load on this base image: at run time
#     the package would otherwise fall back silently to its slow ws-based JS implementation;
#  4. WITH_CHDB=false: delete the native chDB engine, then check that @dwell/warehouse and
#     @dwell/processor still import without it (chdb must be loaded lazily, embedded mode only);
#  5. assemble the runtime tree in /out: root manifest, node_modules (workspace symlinks
#     included), schemas/, and per workspace its package.json, dist/ and nested node_modules/.
ARG WITH_CHDB=true
RUN set -eu; \
    npm prune --omit=dev; \
    arch="$(node -p process.arch)"; \
    abi="$(node -p process.versions.modules)"; \
    uws=node_modules/uWebSockets.js/binaries; \
    find "$uws" -name 'uws_*.node' ! -name "uws_linux_${arch}_*" -delete; \
    node -e "require('./$uws/uws_linux_${arch}_${abi}.node')"; \
    if [ "$WITH_CHDB" = "false" ]; then \
      rm -rf node_modules/@chdb; \
      node --input-type=module -e "await import('@dwell/warehouse'); await import('@dwell/processor')" \
      || { echo "WITH_CHDB=false: importing the processor loads chdb; build with WITH_CHDB=true" >&2; exit 1; }; \
    fi; \
    mkdir -p /out; \
    cp -a package.json node_modules schemas /out/; \
    for w in $(node -p "require('./package.json').workspaces.join(' ')"); do \
      mkdir -p "/out/$w"; \
      cp -a "$w/package.json" "/out/$w/"; \
      if [ -d "$w/dist" ]; then cp -a "$w/dist" "/out/$w/"; fi; \
      if [ -d "$w/node_modules" ]; then cp -a "$w/node_modules" "/out/$w/"; fi; \
    done; \
    find /out -name '*.tsbuildinfo' -delete

# --- runtime -------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
# Files stay owned by root and read-only for the service user.
COPY --from=build /out/ /app/
USER node
# gateway: GATEWAY_PORT (8080, WebSocket + HTTP + /metrics); processor: PROCESSOR_HTTP_PORT (8081)
EXPOSE 8080 8081
# Liveness: the gateway's /healthz on GATEWAY_PORT, else the processor's on
# PROCESSOR_HTTP_PORT (whichever role this container runs answers).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "const ports=[process.env.GATEWAY_PORT||'8080',process.env.PROCESSOR_HTTP_PORT||'8081'];(async()=>{for(const p of ports){try{const r=await fetch('http://127.0.0.1:'+p+'/healthz',{signal:AbortSignal.timeout(2000)});if(r.ok)process.exit(0)}catch{}}process.exit(1)})()"]
ENTRYPOINT ["node", "services/cli/dist/main.js"]
