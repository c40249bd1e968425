# One image for both roles: `deno task start` (API, plus in-process workers unless EMBEDDED_WORKER=false)
# and `deno task worker` (a dedicated worker process).
FROM denoland/deno:2.9.6

WORKDIR /app

# Dependencies first, so they stay cached while only the source changes.
COPY deno.json deno.lock ./
RUN deno install --frozen

COPY . .
# Resolves and caches every module the two entry points load (OpenCV.js included), at build time.
RUN deno cache main.ts worker.ts \
  && mkdir -p uploads result_images \
  && chown -R deno:deno uploads result_images

USER deno

ENV HOST=0.0.0.0 \
    PORT=8000 \
    REDIS_AUTOSTART=false
EXPOSE 8000

# The API's liveness; the worker container turns this off (compose.yaml) and is watched via /api/v1/health/worker.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["deno", "eval", "const r = await fetch(`http://127.0.0.1:${Deno.env.get('PORT') ?? 8000}/api/v1/health/`); Deno.exit(r.ok ? 0 : 1)"]

CMD ["task", "start"]
