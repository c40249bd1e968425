"""Native OpenCV (python3-opencv) running the service's default pipeline, stage by stage, for `deno task bench`.

Reads a JSON request on stdin: {"files": [...], "runs": N, "warmup": W}; prints per-file medians (ms) as JSON.
Single-threaded (cv2.setNumThreads(1)), like one OpenCV.js pool member, so the ratio compares kernels, not cores.
"""
import json
import statistics
import sys
import time

import cv2
import numpy as np


def run_once(data: bytes) -> dict:
    t0 = time.perf_counter()
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    t1 = time.perf_counter()
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    blurred = cv2.GaussianBlur(gray, (5, 5), 0)
    _, binary = cv2.threshold(blurred, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    contours, hierarchy = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    t2 = time.perf_counter()
    measured = []
    for c in contours:
        area = cv2.contourArea(c)
        perimeter = cv2.arcLength(c, True)
        x, y, w, h = cv2.boundingRect(c)
        m = cv2.moments(c)
        measured.append((area, perimeter, x, y, w, h, m["m00"], cv2.isContourConvex(c), c.reshape(-1, 2).tolist()))
    t3 = time.perf_counter()
    annotated = img.copy()
    cv2.drawContours(annotated, contours, -1, (0, 255, 0), 2)
    t4 = time.perf_counter()
    ok, png = cv2.imencode(".png", annotated)
    t5 = time.perf_counter()
    assert ok
    # The annotated image as a JPEG at the quality the service writes (outside "total", like ours).
    ok, jpeg = cv2.imencode(".jpg", annotated, [cv2.IMWRITE_JPEG_QUALITY, 95])
    t6 = time.perf_counter()
    assert ok
    ms = lambda a, b: (b - a) * 1000
    return {
        "decode": ms(t0, t1), "analyse": ms(t1, t2), "measure": ms(t2, t3), "draw": ms(t3, t4),
        "encode": ms(t4, t5), "total": ms(t0, t5), "contour_count": len(measured), "encoded_bytes": len(png),
        "encode_jpeg": ms(t5, t6), "jpeg_bytes": len(jpeg),
    }


def main() -> None:
    request = json.load(sys.stdin)
    cv2.setNumThreads(1)
    out = {"opencv": cv2.__version__, "images": {}}
    for path in request["files"]:
        with open(path, "rb") as f:
            data = f.read()
        for _ in range(request["warmup"]):
            run_once(data)
        runs = [run_once(data) for _ in range(request["runs"])]
        out["images"][path] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
