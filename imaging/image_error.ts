/** Why an image could not be processed; `code` is what clients see in `error.code`. */
export type ImageErrorCode = "not_an_image" | "unsupported_image" | "corrupt_image" | "image_too_large";

/** A permanent failure tied to the image bytes themselves: retrying the same file cannot succeed. */
export class ImageError extends Error {
  constructor(readonly code: ImageErrorCode, message: string) {
    super(message);
    this.name = "ImageError";
  }
}
