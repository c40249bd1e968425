import { AwsClient } from "aws4fetch";
import { XMLParser } from "fast-xml-parser";
import type { Config } from "../config.ts";
import { removeFile } from "./files.ts";
import {
  type Area,
  type ListedObject,
  type ObjectStore,
  StorageUnavailable,
  type StoredObject,
} from "./object_store.ts";

// S3's smallest part (but the last) is 5 MiB; parts are read from the spilled upload one at a time, so this is also
// the most memory one upload to the bucket holds.
const MIN_PART_BYTES = 5 * 2 ** 20;
// One request's deadline: a bucket that accepts connections and never answers must not hold an upload or a job.
const REQUEST_TIMEOUT_MS = 30_000;
const LOCATION = /^s3:\/\/([^/]+)\/(.+)$/;

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** What the S3 store needs of the configuration. */
export type S3Settings = Pick<
  Config,
  | "S3_ENDPOINT"
  | "S3_REGION"
  | "S3_BUCKET"
  | "S3_PREFIX"
  | "S3_ACCESS_KEY_ID"
  | "S3_SECRET_ACCESS_KEY"
  | "S3_SESSION_TOKEN"
  | "S3_FORCE_PATH_STYLE"
  | "S3_MULTIPART_THRESHOLD_MB"
>;

/**
 * Uploads and results as objects `<S3_PREFIX>uploads/<name>` and `<S3_PREFIX>results/<name>` of one bucket, through the
 * S3 REST API signed with Signature V4 (aws4fetch): AWS S3, MinIO, Cloudflare R2 and Ceph RGW all take it. A PUT makes
 * an object visible only once it is complete, and a multipart upload only once it is completed (aborted on failure),
 * so no reader ever sees half an object.
 */
export function createS3Store(config: S3Settings): ObjectStore {
  const bucket = config.S3_BUCKET!;
  const client = new AwsClient({
    accessKeyId: config.S3_ACCESS_KEY_ID!,
    secretAccessKey: config.S3_SECRET_ACCESS_KEY!,
    sessionToken: config.S3_SESSION_TOKEN,
    service: "s3",
    region: config.S3_REGION,
  });
  const endpoint = new URL(config.S3_ENDPOINT ?? `https://s3.${config.S3_REGION}.amazonaws.com`);
  const bucketUrl = config.S3_FORCE_PATH_STYLE
    ? `${endpoint.origin}${endpoint.pathname.replace(/\/$/, "")}/${bucket}`
    : `${endpoint.protocol}//${bucket}.${endpoint.host}${endpoint.pathname.replace(/\/$/, "")}`;
  const key = (area: Area, name: string) => `${config.S3_PREFIX}${area}/${name}`;
  const objectUrl = (k: string) => `${bucketUrl}/${k.split("/").map(encodeURIComponent).join("/")}`;
  const multipartBytes = Math.max(MIN_PART_BYTES, config.S3_MULTIPART_THRESHOLD_MB * 2 ** 20);
  const xml = new XMLParser({ ignoreAttributes: true, parseTagValue: false, isArray: (name) => name === "Contents" });

  /** One signed request; a network failure or a 5xx is StorageUnavailable, any other non-2xx an Error. */
  const request = async (url: string, init: RequestInit = {}, allow404 = false): Promise<Response> => {
    let res: Response;
    try {
      // The body's hash is signed too (aws4fetch would send UNSIGNED-PAYLOAD): a body altered on the way is refused.
      const body = init.body instanceof Uint8Array ? init.body : new TextEncoder().encode(String(init.body ?? ""));
      const headers = { "x-amz-content-sha256": await sha256Hex(body) };
      const signed = await client.sign(url, { ...init, headers });
      res = await fetch(signed, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    } catch (err) {
      throw new StorageUnavailable(`object storage is not reachable: ${(err as Error).message}`);
    }
    if (res.ok || (allow404 && res.status === 404)) return res;
    const text = await res.text().catch(() => "");
    const code = /<Code>([^<]+)<\/Code>/.exec(text)?.[1] ?? res.statusText;
    const message = `object storage answered ${res.status} ${code} to ${init.method ?? "GET"} ${new URL(url).pathname}`;
    if (res.status >= 500 || res.status === 429) throw new StorageUnavailable(message);
    throw new Error(message);
  };
  const keyAt = (location: string) => {
    const m = LOCATION.exec(location);
    if (!m || m[1] !== bucket) throw new Error(`not an object of bucket ${bucket}: ${location}`);
    return m[2];
  };
  const readKey = async (k: string) => {
    const res = await request(objectUrl(k), {}, true);
    if (res.status === 404) {
      await res.body?.cancel();
      return null;
    }
    return new Uint8Array(await res.arrayBuffer());
  };
  const existsKey = async (k: string) => {
    const res = await request(objectUrl(k), { method: "HEAD" }, true);
    await res.body?.cancel();
    return res.status !== 404;
  };
  const removeKey = async (k: string) => {
    // DELETE answers 204 whether or not the object was there; the count (retention's report) needs to know.
    if (!(await existsKey(k))) return false;
    const res = await request(objectUrl(k), { method: "DELETE" }, true);
    await res.body?.cancel();
    return true;
  };
  const put = async (k: string, body: Uint8Array) => {
    const res = await request(objectUrl(k), { method: "PUT", body: body as Uint8Array<ArrayBuffer> });
    await res.body?.cancel();
  };

  /** A spilled upload in parts of `multipartBytes`, read one at a time; aborted (nothing left) on any failure. */
  const putMultipart = async (k: string, path: string, size: number) => {
    const url = objectUrl(k);
    const created = xml.parse(await (await request(`${url}?uploads`, { method: "POST" })).text());
    const uploadId: string = created.InitiateMultipartUploadResult.UploadId;
    const parts: string[] = [];
    const file = await Deno.open(path);
    try {
      for (let offset = 0, n = 1; offset < size; offset += multipartBytes, n++) {
        const part = new Uint8Array(Math.min(multipartBytes, size - offset));
        for (let got = 0; got < part.length;) {
          const read = await file.read(part.subarray(got));
          if (read === null) throw new Error("the upload ended before its size");
          got += read;
        }
        const res = await request(`${url}?partNumber=${n}&uploadId=${encodeURIComponent(uploadId)}`, {
          method: "PUT",
          body: part,
        });
        parts.push(res.headers.get("etag") ?? "");
        await res.body?.cancel();
      }
      const body = `<CompleteMultipartUpload>${
        parts.map((etag, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${etag}</ETag></Part>`).join("")
      }</CompleteMultipartUpload>`;
      const done = await request(`${url}?uploadId=${encodeURIComponent(uploadId)}`, { method: "POST", body });
      // S3 may answer 200 and still report an error in the body of a CompleteMultipartUpload.
      const text = await done.text();
      if (text.includes("<Error>")) throw new StorageUnavailable(`object storage refused to complete ${k}`);
    } catch (err) {
      await request(`${url}?uploadId=${encodeURIComponent(uploadId)}`, { method: "DELETE" }, true)
        .then((r) => r.body?.cancel(), () => {});
      throw err;
    } finally {
      file.close();
    }
  };

  return {
    kind: "s3",
    async prepare() {
      let res: Response;
      try {
        res = await request(`${bucketUrl}/?list-type=2&max-keys=1`, {}, true);
      } catch (err) {
        throw new Error(
          `object storage: bucket ${bucket} at ${endpoint.origin} cannot be used: ${(err as Error).message}`,
        );
      }
      await res.body?.cancel();
      if (res.status === 404) {
        throw new Error(
          `object storage: bucket ${bucket} does not exist at ${endpoint.origin}; create it or fix S3_BUCKET`,
        );
      }
    },
    locate: (area, name) => `s3://${bucket}/${key(area, name)}`,
    write: (area, name, data) => put(key(area, name), typeof data === "string" ? new TextEncoder().encode(data) : data),
    async writeFile(area, name, path, size) {
      if (size > multipartBytes) await putMultipart(key(area, name), path, size);
      else await put(key(area, name), await Deno.readFile(path));
      await removeFile(path);
    },
    read: (area, name) => readKey(key(area, name)),
    readAt: (location) => readKey(keyAt(location)),
    async open(area, name): Promise<StoredObject | null> {
      const res = await request(objectUrl(key(area, name)), {}, true);
      if (res.status === 404 || !res.body) {
        await res.body?.cancel();
        return null;
      }
      return {
        body: res.body,
        size: Number(res.headers.get("content-length") ?? 0),
        modified: new Date(res.headers.get("last-modified") ?? 0),
      };
    },
    exists: (area, name) => existsKey(key(area, name)),
    remove: (area, name) => removeKey(key(area, name)),
    removeAt: (location) => removeKey(keyAt(location)),
    async *list(area): AsyncIterable<ListedObject> {
      const prefix = key(area, "");
      let token: string | undefined;
      do {
        const query = new URLSearchParams({ "list-type": "2", prefix });
        if (token) query.set("continuation-token", token);
        const page = xml.parse(await (await request(`${bucketUrl}/?${query}`)).text()).ListBucketResult ?? {};
        for (const item of page.Contents ?? []) {
          yield { name: String(item.Key).slice(prefix.length), modified: Date.parse(item.LastModified) };
        }
        token = page.IsTruncated === "true" ? page.NextContinuationToken : undefined;
      } while (token);
    },
    async presignedUrl(area, name, expiresSeconds) {
      const url = new URL(objectUrl(key(area, name)));
      url.searchParams.set("X-Amz-Expires", String(expiresSeconds));
      const signed = await client.sign(url.toString(), { method: "GET", aws: { signQuery: true } });
      return signed.url;
    },
  };
}
