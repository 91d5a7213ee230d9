// Hello world as a node (req, res) listener: the same response every server in the bench sends.
import { countResponse } from './response-counter.mjs';

const body = 'Hello, World!\n';

export function app(req, res) {
  countResponse();
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length });
  res.end(body);
}
