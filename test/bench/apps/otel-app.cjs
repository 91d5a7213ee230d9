// The hello-world listener with OpenTelemetry's http instrumentation loaded first, exported for tsgunicorn.
require('./otel-setup.cjs');
const { countResponse } = require('./response-counter.mjs');

const body = 'Hello, World!\n';

exports.app = function app(req, res) {
  countResponse();
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length });
  res.end(body);
};
