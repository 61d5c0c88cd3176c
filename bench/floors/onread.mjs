// bench/floors/onread.mjs: a byte relay with onread user buffers on both sides (accepted sockets re-wrapped), copy on write.
// A floor for Node networking, measured in bench/README.md. Usage: node onread.mjs LISTEN_PORT UPSTREAM_PORT wrap
// relay with onread user buffers on both sides (accepted sockets re-wrapped) and copy-on-write
import net from 'node:net';
const [lp, up, mode] = process.argv.slice(2);
const server = net.createServer({ pauseOnConnect: true, noDelay: true }, (c0) => {
  let client = c0;
  const upstream = net.connect({ port: Number(up), host: '127.0.0.1', noDelay: true, onread: { buffer: Buffer.allocUnsafe(65536), callback(n, buf) { client.write(Buffer.from(buf.subarray(0, n))); } } });
  if (mode === 'wrap') {
    const h = c0._handle; c0._handle = null;
    client = new net.Socket({ handle: h, onread: { buffer: Buffer.allocUnsafe(65536), callback(n, buf) { upstream.write(Buffer.from(buf.subarray(0, n))); } } });
    client.resume();
  } else {
    client.on('data', (d) => upstream.write(d)); client.resume();
  }
  const close = () => { client.destroy(); upstream.destroy(); };
  client.on('error', close); upstream.on('error', close); client.on('close', close); upstream.on('close', close);
});
server.listen(Number(lp), '127.0.0.1');
