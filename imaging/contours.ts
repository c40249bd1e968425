import { type OpenCV, withMats } from "./opencv.ts";
import type { Raster } from "./raster.ts";

/** One contour found in the image. */
export interface Contour {
  id: number;
  /** Index of the enclosing contour, or -1 for a top-level one. */
  parent: number;
  /** Area in square pixels, as OpenCV's contourArea. */
  area: number;
  /** Vertices as [x, y] pixel coordinates (after CHAIN_APPROX_SIMPLE). */
  points: [number, number][];
}

/** What contour detection found, plus the annotated image. */
export interface ContourAnalysis {
  width: number;
  height: number;
  /** The threshold Otsu picked (0–255). */
  threshold: number;
  contours: Contour[];
  /** The input as RGB with every contour drawn in green, 2 px. */
  annotated: Raster;
}

const GRAY_CODES = { 3: "COLOR_RGB2GRAY", 4: "COLOR_RGBA2GRAY" } as const;
const RGB_CODES = { 1: "COLOR_GRAY2RGB", 4: "COLOR_RGBA2RGB" } as const;

/**
 * Runs the reference pipeline: gray → GaussianBlur 5×5 (σ 0) → Otsu binary threshold →
 * findContours(RETR_TREE, CHAIN_APPROX_SIMPLE), then draws the contours (green, 2 px) on the colour image.
 */
export function detectContours(cv: OpenCV, raster: Raster): ContourAnalysis {
  const { width, height, channels } = raster;
  return withMats((keep) => {
    const type = channels === 1 ? cv.CV_8UC1 : channels === 3 ? cv.CV_8UC3 : cv.CV_8UC4;
    const src = keep(new cv.Mat(height, width, type));
    src.data.set(raster.data.subarray(0, width * height * channels));

    let gray = src;
    if (channels !== 1) {
      gray = keep(new cv.Mat());
      cv.cvtColor(src, gray, cv[GRAY_CODES[channels]]);
    }
    const blurred = keep(new cv.Mat());
    cv.GaussianBlur(gray, blurred, new cv.Size(5, 5), 0, 0, cv.BORDER_DEFAULT);
    const binary = keep(new cv.Mat());
    const threshold = cv.threshold(blurred, binary, 0, 255, cv.THRESH_BINARY | cv.THRESH_OTSU);

    const found = keep(new cv.MatVector());
    const hierarchy = keep(new cv.Mat());
    cv.findContours(binary, found, hierarchy, cv.RETR_TREE, cv.CHAIN_APPROX_SIMPLE);

    const contours: Contour[] = [];
    const count = found.size();
    for (let i = 0; i < count; i++) {
      const c = keep(found.get(i));
      const xy = c.data32S;
      const points: [number, number][] = [];
      for (let p = 0; p < xy.length; p += 2) points.push([xy[p], xy[p + 1]]);
      // hierarchy row i is [next, previous, first child, parent].
      contours.push({ id: i, parent: hierarchy.data32S[i * 4 + 3], area: cv.contourArea(c, false), points });
    }

    let colour = src;
    if (channels !== 3) {
      colour = keep(new cv.Mat());
      cv.cvtColor(src, colour, cv[RGB_CODES[channels]]);
    } else {
      colour = keep(src.clone());
    }
    cv.drawContours(colour, found, -1, new cv.Scalar(0, 255, 0, 255), 2, cv.LINE_8);
    // Copied out of the WASM heap: the Mat's memory is released when this scope ends.
    const annotated: Raster = { width, height, channels: 3, data: colour.data.slice() };
    return { width, height, threshold, contours, annotated };
  });
}
