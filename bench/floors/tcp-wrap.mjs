// bench/floors/tcp-wrap.mjs: a byte relay driving Node's tcp_wrap handles directly (no net.Socket streams).
// The lowest Node floor measured in bench/README.md. Usage: node tcp-wrap.mjs LISTEN_PORT UPSTREAM_PORT
// raw-handle relay: tcp_wrap handles driven directly (no net.Socket streams)
import net from 'node:net';
process.noDeprecation = true;
const { WriteWrap, streamBaseState, kReadBytesOrError, kLastWriteWasAsync } = process.binding('stream_wrap');
const { TCP, TCPConnectWrap, constants } = process.binding('tcp_wrap');
const [lp, up] = process.argv.slice(2);
function rawWrite(h, buf) {
  const req = new WriteWrap(); req.handle = h; req.oncomplete = () => {}; req.async = false;
  h.writeBuffer(req, buf);
  if (streamBaseState[kLastWriteWasAsync]) req.buffer = buf; // keep alive
}
function pipeRaw(from, to, ubuf) {
  from.useUserBuffer(ubuf);
  from.onread = () => { const n = streamBaseState[kReadBytesOrError]; if (n > 0) rawWrite(to, Buffer.from(ubuf.subarray(0, n))); else if (n < 0) { from.close(); to.close(); } };
  from.readStart();
}
const server = net.createServer({ pauseOnConnect: true }, (c0) => {
  const h = c0._handle; c0._handle = null; h.setNoDelay(true);
  const u = new TCP(constants.SOCKET); const req = new TCPConnectWrap();
  req.oncomplete = (status) => { if (status < 0) { h.close(); return; } u.setNoDelay(true); pipeRaw(h, u, Buffer.allocUnsafe(65536)); pipeRaw(u, h, Buffer.allocUnsafe(65536)); };
  req.address = '127.0.0.1'; req.port = Number(up);
  u.connect(req, '127.0.0.1', Number(up));
});
server.listen(Number(lp), '127.0.0.1');
