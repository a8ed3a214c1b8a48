// Counts the grants in the kernel for /metrics on a worker thread: the worker runs `nft -j list table` and parses it with the daemon's own reader (nft-read.ts), so a scrape of a table with many grants never holds up a knock on the daemon's thread. Input: the table name from the validated config.
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { errorMessage } from '../errors.ts';
import { METRICS } from '../limits.ts';
import { NftablesFirewall } from './nftables.ts';

interface CountJob {
  readonly sesameGrantCount: string;
  readonly nftPath: string;
}

const isJob = (v: unknown): v is CountJob =>
  typeof v === 'object' && v !== null && 'sesameGrantCount' in v && typeof v.sesameGrantCount === 'string' && 'nftPath' in v && typeof v.nftPath === 'string';

/** The number of live grants in table, read from the kernel off this thread; rejects if nft fails or takes longer than METRICS.grantsReadTimeoutMs. */
export function countGrants(table: string, nftPath = 'nft'): Promise<number> {
  return new Promise((resolve, reject) => {
    const job: CountJob = { sesameGrantCount: table, nftPath };
    const worker = new Worker(new URL(import.meta.url), { workerData: job });
    const timer = setTimeout(() => {
      reject(new Error(`reading the grants took longer than ${METRICS.grantsReadTimeoutMs} ms`));
      void worker.terminate();
    }, METRICS.grantsReadTimeoutMs);
    worker.once('message', (answer: unknown) => {
      clearTimeout(timer);
      if (typeof answer === 'number') resolve(answer);
      else reject(new Error(String(answer)));
    });
    worker.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    worker.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the grant counter exited (${code}) without an answer`)); // no effect once answered
    });
  });
}

// Loaded as the worker: one count, one answer (a number, or a message), then the thread ends.
if (!isMainThread && isJob(workerData)) {
  const port = parentPort;
  new NftablesFirewall({ table: workerData.sesameGrantCount, nftPath: workerData.nftPath }).list().then(
    (grants) => port?.postMessage(grants.length),
    (err: unknown) => port?.postMessage(errorMessage(err)),
  );
}
