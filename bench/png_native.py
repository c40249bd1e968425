"""Native OpenCV's PNG encoder timed on images sent by bench/png_encode.ts, for interleaved comparisons.

Reads commands on stdin, one JSON line each: {"op": "load", "width": W, "height": H} followed by W*H*3 bytes (BGR),
{"op": "time", "image": i, "runs": n} (answers {"ms": [...], "bytes": size} on one line), {"op": "quit"}.
Single-threaded (cv2.setNumThreads(1)), as the service's encoder is; cv2.imencode('.png') with its defaults.
"""
import json
import sys
import time

import cv2
import numpy as np


def main() -> None:
    cv2.setNumThreads(1)
    images = []
    stdin, stdout = sys.stdin.buffer, sys.stdout
    for line in stdin:
        command = json.loads(line)
        if command["op"] == "load":
            w, h = command["width"], command["height"]
            images.append(np.frombuffer(stdin.read(w * h * 3), np.uint8).reshape(h, w, 3).copy())
        elif command["op"] == "time":
            img = images[command["image"]]
            ms, size = [], 0
            for _ in range(command["runs"]):
                t0 = time.perf_counter()
                ok, png = cv2.imencode(".png", img)
                ms.append((time.perf_counter() - t0) * 1000)
                assert ok
                size = len(png)
            stdout.write(json.dumps({"ms": ms, "bytes": size}) + "\n")
            stdout.flush()
        else:
            break


if __name__ == "__main__":
    main()
