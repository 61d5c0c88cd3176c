import xxhash from 'xxhash-wasm';

/**
 * The ring's hash: xxHash64 with seed 0, as an unsigned 64-bit bigint.
 *
 * The WebAssembly module loads asynchronously, so `await initHash()` once at start-up (it is idempotent
 * and safe to call concurrently); after that `hash64` is synchronous and allocation-light, as the router
 * needs on every Bind.
 */

type H64Raw = (input: Uint8Array, seed?: bigint) => bigint;

let h64Raw: H64Raw | null = null;
let loading: Promise<void> | null = null;

export function initHash(): Promise<void> {
  loading ??= xxhash().then((api) => {
    h64Raw = api.h64Raw;
  });
  return loading;
}

/** True once `initHash()` has completed. */
export function hashReady(): boolean {
  return h64Raw !== null;
}

/** xxHash64(bytes, seed 0) as an unsigned 64-bit integer. Requires `initHash()` to have completed. */
export function hash64(bytes: Uint8Array): bigint {
  if (h64Raw === null) throw new Error('hash64() called before initHash() completed');
  return h64Raw(bytes);
}

const utf8 = new TextEncoder();

/** hash64 of a string's UTF-8 bytes (ring points; not for the per-key hot path). */
export function hash64Text(text: string): bigint {
  return hash64(utf8.encode(text));
}
