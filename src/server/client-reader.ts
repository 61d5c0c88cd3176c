/**
 * Client connections read into one reused buffer, as backend connections do (src/pool/chunk-reader.ts).
 * Node offers `onread` only when it creates a socket, and client sockets come from the listening server,
 * so the switch uses what `onread` sets inside net.Socket (its kBuffer/kBufferCb/kBufferGen slots and the
 * handle's useUserBuffer). That is Node's internal layout: it is checked, and only on the Node major
 * version it was written against; anywhere else the socket keeps its 'data' events, which behave the
 * same, only slower.
 */
import net from 'node:net';
import tls from 'node:tls';
import { ChunkReader } from '../pool/chunk-reader.js';

const SUPPORTED_NODE_MAJOR = 20;

interface UserBufferHandle {
  useUserBuffer(buf: Uint8Array): void;
}

/**
 * Switches a paused plain-TCP client socket to reading through a ChunkReader whose chunks go to `sink`,
 * or returns null (nothing changed). Chunks already buffered in the stream still come as 'data' events,
 * before any chunk of the reader.
 */
export function readClientDirectly(socket: net.Socket, sink: (chunk: Buffer) => void): ChunkReader | null {
  if (Number(process.versions.node.split('.')[0]) !== SUPPORTED_NODE_MAJOR) return null;
  if (socket instanceof tls.TLSSocket || !socket.isPaused()) return null;
  const handle = (socket as unknown as { _handle?: Partial<UserBufferHandle> | null })._handle;
  if (!handle || typeof handle.useUserBuffer !== 'function' || handle.constructor?.name !== 'TCP') return null;
  const slots = new Map(Object.getOwnPropertySymbols(socket).map((s) => [s.description, s] as const));
  const kBuffer = slots.get('kBuffer');
  const kBufferCb = slots.get('kBufferCb');
  const kBufferGen = slots.get('kBufferGen');
  if (!kBuffer || !kBufferCb || !kBufferGen) return null;
  const s = socket as unknown as Record<symbol, unknown>;
  if (s[kBuffer] !== null || s[kBufferCb] !== null || s[kBufferGen] !== null) return null; // not the layout expected
  const reader = new ChunkReader();
  reader.sink = sink;
  const gen = reader.onread.buffer as () => Uint8Array;
  const first = gen();
  s[kBuffer] = first;
  s[kBufferCb] = reader.onread.callback;
  s[kBufferGen] = gen;
  handle.useUserBuffer(first);
  return reader;
}
