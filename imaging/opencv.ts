import type * as OpenCVTypes from "@techstark/opencv-js";

/** The OpenCV.js namespace (types from @techstark/opencv-js). */
export type OpenCV = typeof OpenCVTypes;

/** Anything holding WASM memory that must be released by hand. */
export interface Deletable {
  delete(): void;
}

let ready: Promise<OpenCV> | undefined;

/** Loads and initialises OpenCV.js once per isolate; later calls share the same instance. */
export function loadOpenCV(): Promise<OpenCV> {
  // Imported lazily so that importing this module does no work (the WASM instantiates on import).
  ready ??= import("@techstark/opencv-js").then((mod) => {
    const cv = (mod as unknown as { default: OpenCV & { onRuntimeInitialized?: () => void } }).default;
    // The Emscripten module is a thenable that resolves to itself, so resolving any promise with it recurses
    // forever in microtasks. It is wrapped until initialised, then stripped of `then` so callers can await it.
    return new Promise<{ cv: OpenCV }>((resolve) => {
      if (typeof cv.Mat === "function") return resolve({ cv });
      const previous = cv.onRuntimeInitialized;
      cv.onRuntimeInitialized = () => {
        previous?.();
        resolve({ cv });
      };
    }).then(({ cv }) => {
      delete (cv as { then?: unknown }).then;
      return cv;
    });
  });
  return ready;
}

/** Runs `fn` with a `keep` function that registers OpenCV objects; all of them are deleted when `fn` returns or throws. */
export function withMats<T>(fn: (keep: <M extends Deletable>(m: M) => M) => T): T {
  const owned: Deletable[] = [];
  try {
    return fn((m) => {
      owned.push(m);
      return m;
    });
  } finally {
    for (let i = owned.length - 1; i >= 0; i--) owned[i].delete();
  }
}

/** The OpenCV.js version string, e.g. "4.12.0". */
export function openCVVersion(cv: OpenCV): string {
  const m = /Version control:\s*(\S+)/.exec(cv.getBuildInformation());
  return m ? m[1] : "unknown";
}
