/** Why an image could not be processed: the codes clients see in `error.code` (errors.ts registers them). */
export const IMAGE_ERROR_CODES = ["not_an_image", "unsupported_image", "corrupt_image", "image_too_large"] as const;

/** One of IMAGE_ERROR_CODES. */
export type ImageErrorCode = (typeof IMAGE_ERROR_CODES)[number];

/** A permanent failure tied to the image bytes themselves: retrying the same file cannot succeed. */
export class ImageError extends Error {
  constructor(readonly code: ImageErrorCode, message: string) {
    super(message);
    this.name = "ImageError";
  }
}
