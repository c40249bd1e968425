/**
 * A lazily drawn image that can no longer be drawn: it was never drawn and the upload it would be drawn from is gone.
 * errors.ts answers it as 410 image_gone.
 */
export class ImageGone extends Error {
  readonly code = "image_gone";
  constructor(taskId: string) {
    super(
      `the annotated image of ${taskId} was never drawn and its upload no longer exists; the contour data is still ` +
        `available`,
    );
    this.name = "ImageGone";
  }
}
