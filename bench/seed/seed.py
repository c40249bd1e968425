"""A reconstruction of the seed's stack for `deno task bench`: FastAPI + Celery (prefork, 2 processes) + native OpenCV,
all from Debian's packages (python3-fastapi, python3-celery, python3-uvicorn, python3-multipart, python3-redis,
python3-opencv). The seed's own code is not in this repository; this follows its description in issue 5 and the
original HTTP surface: the upload is saved and queued, and a worker draws the contours and writes an annotated PNG and
a JSON result, as our RENDER=eager does. It is a comparison point measured on the same machine in the same run, not
the seed itself.

    uvicorn seed:api            (the API)     celery -A seed worker --pool prefork --concurrency 2   (the workers)

Settings come from the environment: SEED_REDIS_URL (broker, a database of its own), SEED_QUEUE (a fresh queue name per
run), SEED_DIR (uploads and results). Each finished task appends {"id", "t" (epoch ms), "ok"} to the list
"<SEED_QUEUE>:done", which the bench reads; "<SEED_QUEUE>:ready" gets one entry per worker process once it is up.
"""
import json
import os
import time
import uuid

import cv2
import redis
from celery import Celery
from celery.signals import worker_process_init
from fastapi import FastAPI, File, UploadFile
from fastapi.responses import JSONResponse

REDIS_URL = os.environ["SEED_REDIS_URL"]
QUEUE = os.environ["SEED_QUEUE"]
DIR = os.environ["SEED_DIR"]

celery = Celery("seed", broker=REDIS_URL)
# Celery's defaults otherwise (prefetch 4, early acks), as a stock deployment runs.
celery.conf.update(task_default_queue=QUEUE, task_ignore_result=True, broker_connection_retry_on_startup=True,
                   worker_enable_remote_control=False)
api = FastAPI()
store = redis.Redis.from_url(REDIS_URL)


@worker_process_init.connect
def announce(**_):
    cv2.setNumThreads(1)
    store.rpush(f"{QUEUE}:ready", os.getpid())


@celery.task(name="seed.detect_contours")
def detect_contours(task_id: str, path: str) -> None:
    ok = True
    try:
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        blurred = cv2.GaussianBlur(gray, (5, 5), 0)
        threshold, binary = cv2.threshold(blurred, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        contours, _ = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
        measured = []
        for c in contours:
            x, y, w, h = cv2.boundingRect(c)
            measured.append({"area": cv2.contourArea(c), "perimeter": cv2.arcLength(c, True),
                             "bbox": [x, y, w, h], "points": c.reshape(-1, 2).tolist()})
        cv2.drawContours(img, contours, -1, (0, 255, 0), 2)
        cv2.imwrite(os.path.join(DIR, f"{task_id}.png"), img)
        with open(os.path.join(DIR, f"{task_id}.json"), "w") as f:
            json.dump({"task_id": task_id, "threshold": threshold, "contours": measured}, f)
    except Exception:  # noqa: BLE001 - any failure is reported to the bench as a failed task
        ok = False
    store.rpush(f"{QUEUE}:done", json.dumps({"id": task_id, "t": time.time() * 1000, "ok": ok}))


@api.get("/health")
def health() -> dict:
    return {"status": "ok"}


@api.post("/api/v1/images/upload", status_code=202)
async def upload(file: UploadFile = File(...)) -> JSONResponse:
    task_id = str(uuid.uuid4())
    ext = os.path.splitext(file.filename or "")[1].lower() or ".img"
    path = os.path.join(DIR, f"{task_id}{ext}")
    with open(path, "wb") as f:
        f.write(await file.read())
    detect_contours.apply_async(args=[task_id, path], task_id=task_id)
    return JSONResponse({"task_id": task_id, "status": "queued"}, status_code=202)
