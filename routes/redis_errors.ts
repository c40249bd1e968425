import { AppError, Unavailable } from "../errors.ts";

/** Runs Redis work, turning a connection failure into a 503 while leaving the API's own errors alone. */
export async function fromRedis<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw new Unavailable(`Redis is not reachable: ${(err as Error).message}`);
  }
}
