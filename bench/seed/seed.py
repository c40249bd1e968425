"""The original Python service, rebuilt for `deno task bench` from Debian's packages (python3-fastapi, python3-celery,
python3-uvicorn, python3-multipart, python3-redis, python3-opencv) so that it runs on the same machine in the same run
as ours. It is a reconstruction of the original's design, not its code:

- the upload saves the file and queues a Celery task (Redis broker, Celery's Redis result backend);
- a prefork worker reads the file with cv2.imread, finds and measures the contours, draws them and writes the annotated
  image with cv2.imwrite, and returns its path through the result backend;
- GET /api/v1/images/status/{task_id} reads the task's state with AsyncResult and, once it succeeded, gives the image's
  URL under /static/results/, which this app serves.

    uvicorn seed:api                                        (the API)
    celery -A seed worker --pool prefork --concurrency 2    (the workers)

Settings come from the environment: SEED_REDIS_URL (broker and result backend, a database of their own), SEED_QUEUE (a
fresh queue name per run), SEED_DIR (uploads/ and results/ are made in it), SEED_FORMAT ("jpg" or "png": the annotated
image's format, at OpenCV's default settings). Each worker process appends its pid to the list "<SEED_QUEUE>:ready"
once it is up, so the bench knows when to start.
"""
import os
import time
import uuid

import cv2
import redis
from celery import Celery
from celery.result import AsyncResult
from celery.signals import worker_process_init
from fastapi import FastAPI, File, UploadFile
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

REDIS_URL = os.environ["SEED_REDIS_URL"]
QUEUE = os.environ["SEED_QUEUE"]
DIR = os.environ["SEED_DIR"]
FORMAT = os.environ.get("SEED_FORMAT", "jpg")
if FORMAT not in ("jpg", "png"):
    raise ValueError(f"SEED_FORMAT must be jpg or png, not {FORMAT!r}")
UPLOADS = os.path.join(DIR, "uploads")
RESULTS = os.path.join(DIR, "results")
os.makedirs(UPLOADS, exist_ok=True)
os.makedirs(RESULTS, exist_ok=True)

celery = Celery("seed", broker=REDIS_URL, backend=REDIS_URL)
# Celery's defaults otherwise (prefetch multiplier 4, early acks, results kept a day), as a stock deployment runs.
# Remote control is off because its broadcast queue has a fixed name in the shared database, where a run's leftovers
# would meet the next run's workers.
celery.conf.update(task_default_queue=QUEUE, broker_connection_retry_on_startup=True,
                   worker_enable_remote_control=False)
api = FastAPI()


@worker_process_init.connect
def announce(**_):
    # One thread per process, like each of our pool members: two processes on two cores, not two thread pools each
    # as wide as the machine.
    cv2.setNumThreads(1)
    redis.Redis.from_url(REDIS_URL).rpush(f"{QUEUE}:ready", os.getpid())


@celery.task(name="seed.detect_contours")
def detect_contours(task_id: str, path: str) -> dict:
    # CPU time of this thread alone (OpenCV runs on it, see announce): the kernel, without the queue's work around it,
    # so the bench can split the CPU each image costs into the two.
    started = time.thread_time()
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot decode {os.path.basename(path)}")
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    blurred = cv2.GaussianBlur(gray, (5, 5), 0)
    threshold, binary = cv2.threshold(blurred, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    contours, _ = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    measured = [{"area": cv2.contourArea(c), "perimeter": cv2.arcLength(c, True), "bbox": cv2.boundingRect(c)}
                for c in contours]
    cv2.drawContours(img, contours, -1, (0, 255, 0), 2)
    out = os.path.join(RESULTS, f"contour_{task_id}.{FORMAT}")
    if not cv2.imwrite(out, img):
        raise OSError(f"cannot write {out}")
    kernel_cpu_ms = (time.thread_time() - started) * 1000
    return {"result_path": out, "threshold": threshold, "contour_count": len(measured),
            "total_area": sum(m["area"] for m in measured), "kernel_cpu_ms": kernel_cpu_ms}


@api.get("/health")
def health() -> dict:
    return {"status": "ok"}


@api.post("/api/v1/images/upload", status_code=202)
async def upload(file: UploadFile = File(...)) -> JSONResponse:
    task_id = str(uuid.uuid4())
    ext = os.path.splitext(file.filename or "")[1].lower() or ".img"
    path = os.path.join(UPLOADS, f"{task_id}{ext}")
    with open(path, "wb") as f:
        f.write(await file.read())
    detect_contours.apply_async(args=[task_id, path], task_id=task_id)
    return JSONResponse({"task_id": task_id, "status": "queued"}, status_code=202)


# A plain function: FastAPI runs it in its thread pool, so the blocking read from Redis does not hold up the event loop.
@api.get("/api/v1/images/status/{task_id}")
def status(task_id: str) -> dict:
    result = AsyncResult(task_id, app=celery)
    state = result.state
    body = {"task_id": task_id, "status": state}
    if state == "SUCCESS":
        body["result_url"] = f"/static/results/{os.path.basename(result.result['result_path'])}"
    elif state == "FAILURE":
        body["error"] = repr(result.result)
    return body


api.mount("/static/results", StaticFiles(directory=RESULTS), name="results")
