// The same instrumented app under bare node: `node otel-server.cjs`.
const { app } = require('./otel-app.cjs');

app.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
