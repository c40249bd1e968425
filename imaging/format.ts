import { z } from "@hono/zod-openapi";
import { ImageError } from "./image_error.ts";

/** Formats the service decodes (a job's and a summary's `format`). */
export const ImageFormatSchema = z.enum(["jpeg", "png", "bmp", "tiff"]);

/** A format the service decodes. */
export type ImageFormat = z.infer<typeof ImageFormatSchema>;

/** The media type of each decodable format. */
export const MEDIA_TYPES: Record<ImageFormat, string> = {
  jpeg: "image/jpeg",
  png: "image/png",
  bmp: "image/bmp",
  tiff: "image/tiff",
};

/** File extension used for stored uploads of each format. */
export const EXTENSIONS: Record<ImageFormat, string> = { jpeg: "jpg", png: "png", bmp: "bmp", tiff: "tif" };

function startsWith(bytes: Uint8Array, sig: number[], at = 0): boolean {
  if (bytes.length < at + sig.length) return false;
  return sig.every((b, i) => bytes[at + i] === b);
}

const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));

// Recognised so that the client hears "unsupported" rather than "not an image".
const OTHER_IMAGES: [string, (b: Uint8Array) => boolean][] = [
  ["GIF", (b) => startsWith(b, ascii("GIF87a")) || startsWith(b, ascii("GIF89a"))],
  ["WebP", (b) => startsWith(b, ascii("RIFF")) && startsWith(b, ascii("WEBP"), 8)],
  ["AVIF/HEIF", (b) => startsWith(b, ascii("ftyp"), 4)],
  ["ICO", (b) => startsWith(b, [0, 0, 1, 0])],
  [
    "JPEG 2000",
    (b) => startsWith(b, [0, 0, 0, 0x0c, 0x6a, 0x50, 0x20, 0x20]) || startsWith(b, [0xff, 0x4f, 0xff, 0x51]),
  ],
  ["JPEG XL", (b) => startsWith(b, [0xff, 0x0a]) || startsWith(b, [0, 0, 0, 0x0c, 0x4a, 0x58, 0x4c, 0x20])],
  ["Photoshop", (b) => startsWith(b, ascii("8BPS"))],
  ["QOI", (b) => startsWith(b, ascii("qoif"))],
];

/** Decides the format from the first bytes (never from a name or a Content-Type). */
export function sniffFormat(head: Uint8Array): ImageFormat {
  if (startsWith(head, [0xff, 0xd8, 0xff])) return "jpeg";
  if (startsWith(head, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return "png";
  if (startsWith(head, ascii("BM")) && head.length >= 26) return "bmp";
  if (startsWith(head, [0x49, 0x49, 0x2a, 0x00]) || startsWith(head, [0x4d, 0x4d, 0x00, 0x2a])) return "tiff";
  const other = OTHER_IMAGES.find(([, test]) => test(head));
  if (other) {
    throw new ImageError("unsupported_image", `${other[0]} images are not supported; send JPEG, PNG, BMP or TIFF`);
  }
  throw new ImageError("not_an_image", "the file is not an image (expected JPEG, PNG, BMP or TIFF content)");
}
